//! The Python original (PyPI `jwthenticator==1.6.3`) in a virtualenv, and its scripts.
//!
//! The interpreter is `JWTHENTICATOR_PYTHON` when set; otherwise `target/compat-venv/bin/python`
//! in the workspace, created on first use from `tests/python/requirements.txt` (and created anew
//! when that file changes). Creation happens in a staging directory renamed into place, so test
//! processes that race to create it never see a half-installed venv.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

/// How long creating the venv (a `pip install` from PyPI) may take.
const VENV_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one test script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn tests_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> &'static Path {
    tests_dir()
        .parent()
        .expect("the tests package is inside the workspace")
}

/// A script under `tests/python/`.
pub(crate) fn script(name: &str) -> PathBuf {
    tests_dir().join("python").join(name)
}

/// The Python interpreter that has the original installed.
pub(crate) async fn interpreter() -> &'static Path {
    static PYTHON: OnceCell<PathBuf> = OnceCell::const_new();
    PYTHON
        .get_or_init(|| async {
            match std::env::var_os("JWTHENTICATOR_PYTHON") {
                Some(python) if !python.is_empty() => PathBuf::from(python),
                _ => ensure_venv(&workspace_root().join("target").join("compat-venv")).await,
            }
        })
        .await
}

async fn run(command: &mut Command, what: &str, timeout: Duration) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => panic!("{what}: could not start: {err}"),
        Err(_) => panic!("{what}: still running after {timeout:?}"),
    };
    assert!(
        output.status.success(),
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// Creates the venv at `venv` unless it exists with the current requirements; returns its python.
async fn ensure_venv(venv: &Path) -> PathBuf {
    let requirements_path = script("requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path).expect("requirements.txt");
    let marker = |dir: &Path| dir.join("jwthenticator-requirements.txt");
    let python = venv.join("bin").join("python");
    if python.exists() && std::fs::read_to_string(marker(venv)).ok() == Some(requirements.clone()) {
        return python;
    }
    let parent = venv.parent().expect("the venv has a parent directory");
    std::fs::create_dir_all(parent).expect("create target/");
    let staging = parent.join(format!("compat-venv.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&staging),
        "python3 -m venv (python3 must be on PATH, or set JWTHENTICATOR_PYTHON)",
        VENV_TIMEOUT,
    )
    .await;
    run(
        Command::new(staging.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--requirement")
            .arg(&requirements_path),
        "pip install of the Python original (PyPI jwthenticator==1.6.3)",
        VENV_TIMEOUT,
    )
    .await;
    std::fs::write(marker(&staging), &requirements).expect("write the requirements marker");
    if venv.exists() {
        // Outdated requirements (or another process just finished): keep a complete venv only.
        let ready = std::fs::read_to_string(marker(venv)).ok() == Some(requirements.clone());
        if ready {
            let _ = std::fs::remove_dir_all(&staging);
            return python;
        }
        let old = parent.join(format!("compat-venv.old-{}", std::process::id()));
        std::fs::rename(venv, &old).expect("move the outdated venv away");
        let _ = std::fs::remove_dir_all(&old);
    }
    if std::fs::rename(&staging, venv).is_err() {
        // Another process renamed its complete venv into place first.
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(python.exists(), "no venv at {}", venv.display());
    python
}

/// Runs `tests/python/<name>` with `args`; panics with its output unless it exits 0.
pub(crate) async fn run_script(name: &str, args: &[&str]) -> String {
    let python = interpreter().await;
    let output = run(
        Command::new(python)
            .arg(script(name))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1"),
        &format!("{name} {}", args.join(" ")),
        SCRIPT_TIMEOUT,
    )
    .await;
    String::from_utf8_lossy(&output.stdout).into_owned()
}
