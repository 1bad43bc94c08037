//! Drop-in compatibility with the Python original (PyPI `jwthenticator==1.6.3`), proven with its
//! own code: its `Client`, `InternalClient` and `server_utils.authenticate` decorator against this
//! server; a database its server wrote, taken over by this one; and PyJWT's `PyJWKClient` as an
//! independent verifier of `/jwks`.
//!
//! Needs `python3` with `venv` and access to PyPI the first time (the venv is kept in
//! `target/compat-venv`; `JWTHENTICATOR_PYTHON` points at another interpreter that has the
//! original installed), and PostgreSQL as for the rest of the suite.

mod python;
mod support;
mod takeover;

use jwthenticator_tests::TestServer;

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");

#[tokio::test]
async fn original_python_client_and_decorator_work_against_this_server() {
    let server = TestServer::builder(BINARY).start().await;
    let output = python::run_script("compat_client.py", &[&server.url("/")]).await;
    assert!(output.contains(" passed, 0 failed"), "{output}");
    assert!(server.terminate().await);
}

#[tokio::test]
async fn original_python_client_works_under_a_url_prefix() {
    let server = TestServer::builder(BINARY)
        .env("URL_PREFIX", "/auth")
        .health_path("/auth/health")
        .start()
        .await;
    let output = python::run_script("compat_client.py", &[&server.url("/auth/")]).await;
    assert!(output.contains(" passed, 0 failed"), "{output}");
    assert!(server.terminate().await);
}

#[tokio::test]
async fn pyjwt_jwks_client_verifies_rs256_tokens() {
    let server = TestServer::builder(BINARY).start().await;
    let output = python::run_script("jwks_verify.py", &[server.base_url()]).await;
    assert!(output.contains(" passed, 0 failed"), "{output}");
    assert!(server.terminate().await);
}

#[tokio::test]
async fn pyjwt_jwks_client_verifies_ps256_tokens_with_an_audience() {
    let server = TestServer::builder(BINARY)
        .env("JWT_ALGORITHM", "PS256")
        .env("JWT_AUDIENCE", "orders-api,billing-api")
        .start()
        .await;
    let output = python::run_script("jwks_verify.py", &[server.base_url(), "billing-api"]).await;
    assert!(output.contains(" passed, 0 failed"), "{output}");
    assert!(server.terminate().await);
}
