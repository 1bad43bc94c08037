//! The admin client for the internal API.

use jwthenticator_reqwest::{AdminClient, AdminError, ConfigError};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::support::{Setup, http_client};

#[tokio::test]
async fn register_key_then_is_key_registered() {
    let setup = Setup::new();
    let admin = AdminClient::with_http_client(setup.server.url(), http_client()).unwrap();

    assert!(!admin.is_key_registered("new-key").await.unwrap());
    admin.register_key("new-key", Uuid::new_v4()).await.unwrap();
    assert!(admin.is_key_registered("new-key").await.unwrap());
    assert!(!admin.is_key_registered("other-key").await.unwrap());
}

#[tokio::test]
async fn admin_client_keeps_the_path_prefix() {
    let setup = Setup::new();
    let admin = AdminClient::with_http_client(setup.server.prefixed_url(), http_client()).unwrap();

    admin
        .register_key("prefixed-key", Uuid::new_v4())
        .await
        .unwrap();
    assert!(admin.is_key_registered("prefixed-key").await.unwrap());
}

#[tokio::test]
async fn error_status_carries_the_server_message() {
    let setup = Setup::new();
    setup
        .server
        .fail_register_key(StatusCode::BAD_REQUEST, Some("identifier: not a UUID"));
    let admin = AdminClient::with_http_client(setup.server.url(), http_client()).unwrap();

    let err = admin
        .register_key("s3cret-key", Uuid::new_v4())
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            AdminError::Status {
                route: "/register_key",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(err.server_message(), Some("identifier: not a UUID"));
    assert!(err.to_string().contains("400"), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cret"));
}

#[tokio::test]
async fn error_status_without_a_json_body_has_no_message() {
    let setup = Setup::new();
    setup
        .server
        .fail_register_key(StatusCode::INTERNAL_SERVER_ERROR, None);
    let admin = AdminClient::with_http_client(setup.server.url(), http_client()).unwrap();

    let err = admin.register_key("k", Uuid::new_v4()).await.unwrap_err();

    assert_eq!(err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(err.server_message(), None);
}

#[tokio::test]
async fn register_key_expects_201_not_just_success() {
    let setup = Setup::new();
    setup.server.fail_register_key(StatusCode::OK, None);
    let admin = AdminClient::with_http_client(setup.server.url(), http_client()).unwrap();

    let err = admin.register_key("k", Uuid::new_v4()).await.unwrap_err();

    assert_eq!(err.status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    // Bind and drop a listener to get a loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin =
        AdminClient::with_http_client(format!("http://127.0.0.1:{port}/"), http_client()).unwrap();

    let err = admin.is_key_registered("k").await.unwrap_err();

    assert!(matches!(err, AdminError::Transport { .. }), "{err:?}");
    assert_eq!(err.status(), None);
}

#[test]
fn admin_client_rejects_a_non_http_url() {
    let err = AdminClient::new("ftp://example.com/").unwrap_err();
    assert!(matches!(err, ConfigError::UnsupportedServerUrl), "{err:?}");
}
