//! `examples/docker-compose.yml` and its nginx configuration: `docker compose config`, `nginx -t`,
//! and agreement with the Dockerfile and the server.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;
use tokio::process::Command;

use crate::dockerfile::{healthcheck_command, stage, stages};
use crate::support::{
    Help, at, on_path, read, run, scalar, strings, workspace_root, yaml_documents,
};
use crate::{BINARY, COMPOSE_FILE, COMPOSE_NGINX, SERVER_IMAGE, SERVER_SERVICE};

pub(crate) fn compose() -> Value {
    let mut documents = yaml_documents(Path::new(COMPOSE_FILE));
    assert_eq!(documents.len(), 1, "{COMPOSE_FILE} is one YAML document");
    documents.remove(0)
}

/// A compose service's `environment`, as a mapping or as a list of `NAME=value`.
pub(crate) fn compose_environment(service: &Value) -> BTreeMap<String, String> {
    let environment = at(service, &["environment"]);
    if let Some(map) = environment.as_mapping() {
        map.iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v).unwrap_or_default())))
            .collect()
    } else {
        strings(environment)
            .iter()
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }
}

/// `image: name:tag` → `name`.
pub(crate) fn image_name(image: &Value) -> String {
    let image = scalar(image).unwrap_or_default();
    image.split(':').next().unwrap_or_default().to_owned()
}

/// `docker compose` when the plugin is installed, else `docker-compose`.
pub(crate) async fn compose_command() -> Command {
    if on_path("docker").is_some() {
        let plugin = run(
            Command::new("docker").args(["compose", "version"]),
            "docker compose version",
        )
        .await;
        if plugin.status.success() {
            let mut command = Command::new("docker");
            command.arg("compose");
            return command;
        }
    }
    let legacy = on_path("docker-compose").unwrap_or_else(|| {
        panic!(
            "neither `docker compose` nor docker-compose is installed: run .ci/setup or \
             apt-get install docker-compose"
        )
    });
    Command::new(legacy)
}

#[tokio::test]
async fn docker_compose_config_accepts_it_and_requires_its_passwords() {
    const REQUIRED: [&str; 3] = ["POSTGRES_PASSWORD", "ADMIN_TOKEN", "KEY_HASH_SECRET"];
    // `docker compose config` with the required variables set except `missing`.
    let config = |missing: Option<&'static str>| async move {
        let mut command = compose_command().await;
        command
            .args(["-f", "docker-compose.yml", "config", "--quiet"])
            .current_dir(workspace_root().join("examples"));
        for name in REQUIRED {
            if Some(name) == missing {
                command.env_remove(name);
            } else {
                command.env(name, format!("example-{}", name.to_lowercase()));
            }
        }
        let output = run(&mut command, "docker compose config").await;
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (valid, stderr) = config(None).await;
    assert!(valid, "docker compose config:\n{stderr}");
    for name in REQUIRED {
        // The message is the compose file's own `${NAME:?set NAME}`.
        let (valid, stderr) = config(Some(name)).await;
        assert!(
            !valid && stderr.contains(&format!("set {name}")),
            "without {name} the compose file must refuse to start, not run with an empty \
             secret: {stderr}"
        );
    }
}

/// nginx.conf's `upstream NAME { server ADDRESS; }` blocks.
pub(crate) fn nginx_upstreams(conf: &str) -> BTreeMap<String, Vec<String>> {
    let mut upstreams: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in conf.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("upstream ")
            .and_then(|rest| rest.strip_suffix('{'))
        {
            current = Some(name.trim().to_owned());
        } else if line == "}" {
            current = None;
        } else if let (Some(name), Some(address)) = (
            &current,
            line.strip_prefix("server ")
                .and_then(|rest| rest.split([' ', ';']).next()),
        ) {
            upstreams
                .entry(name.clone())
                .or_default()
                .push(address.to_owned());
        }
    }
    upstreams
}

#[tokio::test]
async fn services_agree_with_the_dockerfile_the_server_and_nginx() {
    let help = Help::of(BINARY).await;
    let compose = compose();
    let services = at(&compose, &["services"]).as_mapping().expect("services");
    let service = |name: &str| {
        services
            .get(name)
            .unwrap_or_else(|| panic!("{COMPOSE_FILE} has a `{name}` service"))
    };
    let stages = stages();

    // Built images come from the repository's Dockerfile, by stage.
    for (name, definition) in services {
        let name = name.as_str().unwrap_or_default();
        for dependency in at(definition, &["depends_on"])
            .as_mapping()
            .map(|m| {
                m.keys()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_else(|| strings(at(definition, &["depends_on"])))
        {
            assert!(
                services.contains_key(dependency.as_str()),
                "{name} depends on an unknown service {dependency}"
            );
        }
        let build = at(definition, &["build"]);
        if build.is_null() {
            continue;
        }
        let context = workspace_root()
            .join("examples")
            .join(scalar(at(build, &["context"])).expect("build.context"));
        assert_eq!(
            context.canonicalize().expect("the build context exists"),
            workspace_root().canonicalize().expect("the workspace root"),
            "{name} builds from the repository root"
        );
        assert_eq!(
            scalar(at(build, &["dockerfile"])).as_deref(),
            Some("Dockerfile")
        );
        let target = scalar(at(build, &["target"])).expect("build.target");
        stage(&stages, &target);
    }

    // The server: its default port, the internal port apart and unpublished, the health check of
    // the Dockerfile, the key from a secret, PostgreSQL 16.
    let server = service(SERVER_SERVICE);
    assert_eq!(
        scalar(at(server, &["build", "target"])).as_deref(),
        Some("server")
    );
    assert_eq!(image_name(at(server, &["image"])), SERVER_IMAGE);
    let env = compose_environment(server);
    let port = help.default_of("PORT").expect("PORT's default");
    assert_eq!(env.get("PORT").map(String::as_str).unwrap_or(port), port);
    let internal_port = env.get("INTERNAL_PORT").expect("INTERNAL_PORT is set");
    assert_ne!(internal_port, port);
    assert!(
        !env.get("INTERNAL_HOST")
            .is_none_or(|host| host.starts_with("127.") || host == "localhost"),
        "INTERNAL_HOST must be a non-loopback address, or no other container reaches INTERNAL_PORT"
    );
    let exposed = strings(at(server, &["expose"]));
    assert!(exposed.iter().any(|p| p == port) && exposed.contains(internal_port));
    assert!(
        !strings(at(server, &["ports"]))
            .iter()
            .any(|published| published.ends_with(&format!(":{internal_port}"))),
        "the internal port is not published to the host"
    );
    assert_eq!(
        strings(at(server, &["healthcheck", "test"])),
        [
            &["CMD".to_owned()][..],
            &healthcheck_command(stage(&stages, "server"))
        ]
        .concat()
    );
    // `docker compose stop` waits stop_grace_period before SIGKILL: more than the drain.
    let seconds = |name: &str| -> u64 {
        env.get(name)
            .map(String::as_str)
            .or_else(|| help.default_of(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in seconds"))
    };
    let grace = scalar(at(server, &["stop_grace_period"]))
        .and_then(|v| v.strip_suffix('s').and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(10);
    assert!(
        seconds("DRAIN_DELAY") + seconds("SHUTDOWN_TIMEOUT") < grace,
        "DRAIN_DELAY + SHUTDOWN_TIMEOUT end before stop_grace_period ({grace} s)"
    );
    let key_path = env
        .get("RSA_PRIVATE_KEY_PATH")
        .expect("RSA_PRIVATE_KEY_PATH");
    let secret = key_path
        .strip_prefix("/run/secrets/")
        .expect("the key is a compose secret");
    assert!(
        strings(at(server, &["secrets"]))
            .iter()
            .any(|s| s == secret)
    );
    let secret_file =
        scalar(at(&compose, &["secrets", secret, "file"])).expect("the secret's file");
    let secret_dir = workspace_root()
        .join("examples")
        .join(&secret_file)
        .parent()
        .map(Path::to_path_buf)
        .expect("a directory");
    assert!(
        secret_dir.join(".gitignore").is_file(),
        "{} ignores the keys put there",
        secret_dir.display()
    );
    let db_host = env.get("DB_HOST").expect("DB_HOST");
    assert!(
        scalar(at(service(db_host), &["image"]))
            .is_some_and(|image| image.starts_with("postgres:16")),
        "DB_HOST names the PostgreSQL 16 service"
    );
    assert_eq!(
        env.get("DB_PASS"),
        compose_environment(service(db_host)).get("POSTGRES_PASSWORD"),
        "the server logs in with the database's password"
    );

    // The example service fetches the JWKS from the server's port.
    let example = service("protected-service");
    let example_env = compose_environment(example);
    assert_eq!(
        example_env.get("JWTHENTICATOR_URL"),
        Some(&format!("http://{SERVER_SERVICE}:{port}"))
    );
    let example_port = example_env.get("PORT").expect("the example's PORT");

    // nginx: its configuration is the file the compose file mounts; its upstreams are the
    // server's port and the example's; the port it listens on is the one published.
    let nginx = service("nginx");
    let mounts = strings(at(nginx, &["volumes"]));
    assert!(
        mounts.iter().any(|m| m
            == &format!(
                "./{}:/etc/nginx/nginx.conf:ro",
                COMPOSE_NGINX.trim_start_matches("examples/")
            )),
        "nginx mounts {COMPOSE_NGINX}: {mounts:?}"
    );
    let conf = read(COMPOSE_NGINX);
    let upstreams = nginx_upstreams(&conf);
    assert_eq!(
        upstreams.get("jwthenticator"),
        Some(&vec![format!("{SERVER_SERVICE}:{port}")])
    );
    let network = scalar(at(nginx, &["network_mode"])).expect("nginx shares a network namespace");
    let host = network
        .strip_prefix("service:")
        .expect("network_mode: service:...");
    assert_eq!(host, "protected-service");
    assert_eq!(
        upstreams.get("protected_service"),
        Some(&vec![format!("127.0.0.1:{example_port}")]),
        "nginx reaches the example on loopback, in the namespace it shares"
    );
    assert!(
        conf.contains("auth_request /_jwthenticator;")
            && conf.contains("proxy_pass http://jwthenticator/validate_request;"),
        "nginx asks /validate_request before passing a request on"
    );
    let listen = conf
        .lines()
        .find_map(|line| line.trim().strip_prefix("listen "))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("nginx listens");
    assert!(
        strings(at(service(host), &["ports"]))
            .iter()
            .any(|published| published.ends_with(&format!(":{listen}"))),
        "the port nginx listens on ({listen}) is published"
    );
}

#[tokio::test]
async fn nginx_conf_passes_nginx_t() {
    let nginx = on_path("nginx")
        .or_else(|| Some(Path::new("/usr/sbin/nginx").to_path_buf()).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("nginx is not installed: run .ci/setup or apt-get install nginx-light")
        });
    // The compose service name resolves only on the compose network.
    let conf = read(COMPOSE_NGINX);
    let upstream = format!("server {SERVER_SERVICE}:8080;");
    assert_eq!(conf.matches(&upstream).count(), 1);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf.replace(&upstream, "server 127.0.0.1:8080;")).expect("write");
    let output = run(
        Command::new(nginx)
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .args(["-e", "/dev/stderr"]),
        "nginx -t",
    )
    .await;
    assert!(
        output.status.success(),
        "nginx -t:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
