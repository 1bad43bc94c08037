//! Per-request cost of `JwtAuthMiddleware` holding a fresh JWT, against a loopback axum server:
//! a plain `reqwest::Client` that sets the same `Authorization` header itself, a
//! `reqwest-middleware` client without middleware, and one with `JwtAuthMiddleware`.
//! Sequential requests on one kept-alive connection each.
//!
//! `cargo bench -p jwthenticator-reqwest --bench middleware`

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use http::header::AUTHORIZATION;
use jwthenticator_reqwest::JwtAuthMiddleware;
use reqwest_middleware::ClientBuilder;

/// A JWT fresh for an hour. The client reads only `exp`, so the signature is a dummy.
fn fresh_jwt() -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 3600;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = format!(
        r#"{{"token_id":"6f1c6b3e-2f55-4bb4-9b43-4d1f3f1b2c3d","identifier":"0a9e0b54-8c1c-4c49-8bb6-0a5e0cf0f3a1","iat":{},"exp":{exp}}}"#,
        exp - 3600
    );
    let signature = URL_SAFE_NO_PAD.encode([7u8; 256]);
    format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims))
}

fn middleware(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds loopback");
        let address = listener.local_addr().expect("an address");
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/")
    });
    let jwt = fresh_jwt();
    let header = HeaderValue::try_from(format!("Bearer {jwt}")).expect("a header value");
    let plain = reqwest::Client::new();
    let bare = ClientBuilder::new(reqwest::Client::new()).build();
    let auth = JwtAuthMiddleware::builder(url.clone(), uuid::Uuid::new_v4())
        .with_jwt(jwt)
        .with_allowed_hosts(["127.0.0.1"])
        .build()
        .expect("builds the middleware");
    let authenticated = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();

    let mut group = c.benchmark_group("reqwest per request, loopback");
    group.bench_function("plain reqwest::Client, header set by hand", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = plain
                    .get(&url)
                    .header(AUTHORIZATION, header.clone())
                    .send()
                    .await
                    .expect("answers");
                assert!(response.status().is_success());
                response.bytes().await.expect("a body")
            })
        })
    });
    group.bench_function(
        "reqwest-middleware client, no middleware, header set by hand",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = bare
                        .get(&url)
                        .header(AUTHORIZATION, header.clone())
                        .send()
                        .await
                        .expect("answers");
                    assert!(response.status().is_success());
                    response.bytes().await.expect("a body")
                })
            })
        },
    );
    group.bench_function("JwtAuthMiddleware, fresh token", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = authenticated.get(&url).send().await.expect("answers");
                assert!(response.status().is_success());
                response.bytes().await.expect("a body")
            })
        })
    });
    group.finish();
}

criterion_group!(benches, middleware);
criterion_main!(benches);
