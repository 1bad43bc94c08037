//! The admin client for the internal API.

use jwthenticator_reqwest::{AdminClient, AdminError, ConfigError};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::support::{Setup, http_client_builder};

#[tokio::test]
async fn register_key_then_is_key_registered() {
    let setup = Setup::new();
    let admin = AdminClient::builder(setup.server.url())
        .with_http_client(http_client_builder())
        .build()
        .unwrap();

    assert!(!admin.is_key_registered("new-key").await.unwrap());
    admin.register_key("new-key", Uuid::new_v4()).await.unwrap();
    assert!(admin.is_key_registered("new-key").await.unwrap());
    assert!(!admin.is_key_registered("other-key").await.unwrap());
}

#[tokio::test]
async fn admin_client_keeps_the_path_prefix() {
    let setup = Setup::new();
    let admin = AdminClient::builder(setup.server.prefixed_url())
        .with_http_client(http_client_builder())
        .build()
        .unwrap();

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
    let admin = AdminClient::builder(setup.server.url())
        .with_http_client(http_client_builder())
        .build()
        .unwrap();

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
    let admin = AdminClient::builder(setup.server.url())
        .with_http_client(http_client_builder())
        .build()
        .unwrap();

    let err = admin.register_key("k", Uuid::new_v4()).await.unwrap_err();

    assert_eq!(err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(err.server_message(), None);
}

#[tokio::test]
async fn register_key_expects_201_not_just_success() {
    let setup = Setup::new();
    setup.server.fail_register_key(StatusCode::OK, None);
    let admin = AdminClient::builder(setup.server.url())
        .with_http_client(http_client_builder())
        .build()
        .unwrap();

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
    let admin = AdminClient::builder(format!("http://127.0.0.1:{port}/"))
        .with_http_client(http_client_builder())
        .build()
        .unwrap();

    let err = admin.is_key_registered("k").await.unwrap_err();

    assert!(matches!(err, AdminError::Transport { .. }), "{err:?}");
    assert_eq!(err.status(), None);
}

#[test]
fn admin_client_rejects_a_non_http_url() {
    let err = AdminClient::new("ftp://example.com/").unwrap_err();
    assert!(matches!(err, ConfigError::UnsupportedServerUrl), "{err:?}");
}

#[test]
fn admin_client_builder_checks_the_token_and_the_deadline_and_hides_the_token() {
    let err = AdminClient::builder("http://127.0.0.1:1/")
        .with_admin_token("line\nbreak")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidAdminToken), "{err:?}");

    let err = AdminClient::builder("http://127.0.0.1:1/")
        .with_call_timeout(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidSetting(_)), "{err:?}");

    let builder =
        AdminClient::builder("http://127.0.0.1:1/").with_admin_token("s3cret-admin-token");
    let shown_builder = format!("{builder:?}");
    let shown = format!("{shown_builder} {:?}", builder.build().unwrap());
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("admin_token"), "{shown}");
}
