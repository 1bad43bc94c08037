//! The whole HTTP contract is in the spec: schemathesis generates requests from the server's own
//! `/openapi.json` (valid ones and ones the spec forbids, every documented method and some that
//! are not) and runs every check it has (as `--checks all`, set in `schemathesis.toml` beside
//! this file with its two settings: 413 rejects invalid data too, and `/validate_request`
//! answers every method, also those OpenAPI cannot name): answers match the documented statuses,
//! content types, headers and schemas; what the spec forbids is refused and what it allows is
//! accepted; 405 carries `Allow`; the security scheme is enforced; never a 5xx) against the real
//! server binary on SQLite. Any failure fails the test.
//!
//! The server runs with `ADMIN_TOKEN`, and schemathesis sends it, so the internal operations are
//! reached too (and `ignored_auth` checks that they refuse requests without it).
//!
//! Needs the pinned schemathesis that `.ci/setup` installs in `/opt/schemathesis` (or the one
//! `SCHEMATHESIS` names). Without it the test fails in CI, and elsewhere is skipped with a message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jwthenticator_tests::TestServer;

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");
/// Where `.ci/setup` installs schemathesis.
const INSTALLED: &str = "/opt/schemathesis/bin/schemathesis";
/// An admin token of the shortest length accepted.
const ADMIN_TOKEN: &str = "contract-test-admin-token-32-chr";
/// Test cases per operation and phase: enough for every check to see each operation's
/// statuses, few enough that the run takes about a minute.
const MAX_EXAMPLES: &str = "25";
/// The bound on the whole run.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// The schemathesis to run, if there is one.
fn schemathesis() -> Option<PathBuf> {
    std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(INSTALLED)))
        .filter(|path| path.exists())
}

#[tokio::test]
async fn schemathesis_finds_no_failure_with_every_check() {
    let Some(schemathesis) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is missing in CI: .ci/setup installs it in /opt/schemathesis"
        );
        eprintln!(
            "SKIPPED: schemathesis is not installed; run `bash .ci/setup` (installs it in \
             /opt/schemathesis) or set SCHEMATHESIS to its path"
        );
        return;
    };
    let server = TestServer::builder(BINARY)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .start()
        .await;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    // Schemathesis keeps its example database in the working directory.
    let workdir = tempfile::tempdir().expect("temporary directory");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned());
    let run = tokio::process::Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", &seed, "--request-timeout", "10", "--workers", "2"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"))
        .current_dir(workdir.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {RUN_TIMEOUT:?}"))
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    // The report quotes every failing request in full; its summary is at the end.
    let summary: String = report
        .chars()
        .skip(report.chars().count().saturating_sub(20_000))
        .collect();
    assert!(
        output.status.success(),
        "schemathesis found failures (seed {seed}; rerun with SCHEMATHESIS_SEED={seed}):\n\
         {summary}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    assert!(
        report.contains("No issues found") || report.contains(" passed"),
        "schemathesis ran no test:\n{summary}"
    );
    assert!(server.terminate().await, "the server shut down cleanly");
}
