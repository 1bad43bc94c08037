//! Which requests get the JWT, how, and what `Debug` shows.

use std::sync::{Arc, Mutex};

use http::Extensions;
use http::header::AUTHORIZATION;
use jwthenticator_reqwest::{ConfigError, JwtAuthMiddleware};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{ClientBuilder, Middleware, Next};

use crate::fake_target::FakeTarget;
use crate::support::{Setup, http_client, http_client_builder};

#[tokio::test]
async fn existing_authorization_header_is_not_overwritten() {
    let setup = Setup::new();
    let client = setup.default_client();

    let response = client
        .get(setup.target.url("things"))
        .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        setup.target.authorizations(),
        vec![Some("Basic dXNlcjpwYXNz".to_owned())]
    );
    assert_eq!(setup.server.authenticate_calls(), 0);
}

#[tokio::test]
async fn jwt_is_attached_only_for_allowed_hosts() {
    let setup = Setup::new();
    let third_party = FakeTarget::start();
    let middleware = setup
        .middleware()
        .with_allowed_hosts([setup.target.addr().to_string()])
        .build()
        .unwrap();
    assert!(middleware.is_allowed(&setup.target.url("x").parse().unwrap()));
    assert!(!middleware.is_allowed(&third_party.url("x").parse().unwrap()));
    let client = setup.client(middleware);

    client
        .get(third_party.url("elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(third_party.authorizations(), vec![None]);
    assert_eq!(
        setup.server.authenticate_calls(),
        0,
        "no token is fetched for it"
    );

    client
        .get(setup.target.url("allowed"))
        .send()
        .await
        .unwrap();
    let authorization = setup.target.authorizations()[0].clone().unwrap();
    assert!(authorization.starts_with("Bearer "), "{authorization}");
}

#[tokio::test]
async fn without_allowed_hosts_or_any_host_the_middleware_does_not_build() {
    let setup = Setup::new();
    let err = JwtAuthMiddleware::builder(setup.server.url(), setup.identifier)
        .with_key(setup.server.key())
        .build()
        .expect_err("the hosts are required");
    assert!(matches!(err, ConfigError::NoAllowedHosts), "{err:?}");
    assert!(err.to_string().contains("with_allowed_hosts"), "{err}");

    let err = setup
        .middleware()
        .with_any_host(true)
        .build()
        .expect_err("a list and any host contradict each other");
    assert!(matches!(err, ConfigError::InvalidSetting(_)), "{err:?}");
}

#[tokio::test]
async fn with_any_host_every_host_gets_the_jwt() {
    let setup = Setup::new();
    let third_party = FakeTarget::start();
    let anywhere = JwtAuthMiddleware::builder(setup.server.url(), setup.identifier)
        .with_key(setup.server.key())
        .with_http_client(http_client_builder())
        .with_any_host(true)
        .build()
        .unwrap();
    assert!(anywhere.is_allowed(&third_party.url("x").parse().unwrap()));

    setup
        .client(anywhere)
        .get(third_party.url("anything"))
        .send()
        .await
        .unwrap();
    let authorization = third_party.authorizations()[0].clone().unwrap();
    assert!(authorization.starts_with("Bearer "), "{authorization}");
}

/// Records whether the `Authorization` header it sees is marked sensitive.
struct SensitivityProbe(Arc<Mutex<Vec<bool>>>);

#[async_trait::async_trait]
impl Middleware for SensitivityProbe {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if let Some(value) = req.headers().get(AUTHORIZATION) {
            self.0
                .lock()
                .expect("not poisoned")
                .push(value.is_sensitive());
        }
        next.run(req, extensions).await
    }
}

#[tokio::test]
async fn attached_authorization_header_is_marked_sensitive() {
    let setup = Setup::new();
    setup.target.answer_401_once();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = ClientBuilder::new(http_client())
        .with(setup.middleware().build().unwrap())
        .with(SensitivityProbe(Arc::clone(&seen)))
        .build();

    client.get(setup.target.url("things")).send().await.unwrap();

    // The first send and the resend after the 401.
    assert_eq!(*seen.lock().unwrap(), vec![true, true]);
}

#[tokio::test]
async fn debug_output_shows_no_secrets() {
    let setup = Setup::new();
    let refresh_token = setup.server.issue_refresh_token();
    let jwt = setup.server.issue_jwt(3600);
    let server_url = setup
        .server
        .url()
        .replace("http://", "http://admin:s3cret-password@");
    let builder = JwtAuthMiddleware::builder(server_url, setup.identifier)
        .with_key(setup.server.key())
        .with_refresh_token(refresh_token.clone())
        .with_jwt(jwt.clone())
        .with_any_host(true);
    let builder_debug = format!("{builder:?}");
    let middleware = builder.build().unwrap();
    let middleware_debug = format!("{middleware:?} {middleware:#?}");

    for debug in [&builder_debug, &middleware_debug] {
        for secret in [
            setup.server.key().as_str(),
            refresh_token.as_str(),
            jwt.as_str(),
            "s3cret-password",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains(&setup.identifier.to_string()), "{debug}");
    }
}

#[tokio::test]
async fn tokens_given_to_the_listener_show_no_secrets_in_debug() {
    let setup = Setup::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let middleware = setup
        .middleware()
        .with_token_listener(move |tokens| {
            let jwt = tokens.jwt().unwrap().to_owned();
            let refresh_token = tokens.refresh_token().unwrap().to_owned();
            record
                .lock()
                .unwrap()
                .push((format!("{tokens:?}"), jwt, refresh_token));
        })
        .build()
        .unwrap();

    setup
        .client(middleware)
        .get(setup.target.url("x"))
        .send()
        .await
        .unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (debug, jwt, refresh_token) = &seen[0];
    assert!(!debug.contains(jwt.as_str()), "{debug}");
    assert!(!debug.contains(refresh_token.as_str()), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}
