//! `examples/prometheus/alerts.yml`: valid rules (`promtool check rules`), alerts that fire on
//! the series of `alerts_test.yml` and only there (`promtool test rules`), and metric names
//! that the server or the tower layer really record.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;
use tokio::process::Command;

use crate::support::{at, on_path, run, workspace_root};

const RULES: &str = "examples/prometheus/alerts.yml";
const RULE_TESTS: &str = "examples/prometheus/alerts_test.yml";

fn promtool() -> Command {
    let promtool = on_path("promtool")
        .expect("promtool is needed: .ci/setup installs Debian's `prometheus` package");
    let mut command = Command::new(promtool);
    command.current_dir(workspace_root());
    command
}

#[tokio::test]
async fn the_alerting_rules_pass_promtool_check_and_their_unit_tests() {
    for args in [["check", "rules", RULES], ["test", "rules", RULE_TESTS]] {
        let what = format!("promtool {}", args.join(" "));
        let output = run(promtool().args(args), &what).await;
        assert!(
            output.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The metric names of a PromQL expression: outside quoted strings, the identifiers with an
/// underscore (functions, keywords and the labels these rules use have none).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut quoted = false;
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.contains('_') && !word.starts_with(|c: char| c.is_ascii_digit()) {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// Every Rust source file under `dir`.
fn sources(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).expect("source"));
        }
    }
}

#[test]
fn every_metric_a_rule_names_is_recorded_by_the_server_or_the_tower_layer() {
    let rules: Value = serde_yaml::from_str(
        &std::fs::read_to_string(workspace_root().join(RULES)).expect("alerts.yml"),
    )
    .expect("YAML");
    let mut named = BTreeSet::new();
    for group in at(&rules, &["groups"]).as_sequence().expect("groups") {
        for rule in at(group, &["rules"]).as_sequence().expect("rules") {
            let expr = at(rule, &["expr"]).as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} names a metric");
            named.extend(names);
        }
    }
    let mut code = String::new();
    for crate_dir in ["jwthenticator-server/src", "jwthenticator-tower/src"] {
        sources(&workspace_root().join(crate_dir), &mut code);
    }
    let missing: Vec<&String> = named
        .iter()
        .filter(|name| {
            let recorded = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !code.contains(&format!("\"{recorded}\""))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{RULES} names metrics no code records: {missing:?}"
    );
    for expected in [
        "jwthenticator_signing_key_age_seconds",
        "jwthenticator_refresh_token_reuse_total",
        "jwthenticator_tower_stale_key_uses_total",
    ] {
        assert!(named.contains(expected), "a rule watches {expected}");
    }
}
