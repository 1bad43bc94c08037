//! The axum extractor, through a `Router` called without a socket.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header::AUTHORIZATION};
use jwthenticator_tower::JwtClaims;
use tower::ServiceExt;

use crate::support::*;

async fn whoami(JwtClaims(claims): JwtClaims) -> String {
    claims.identifier.to_string()
}

async fn greet(claims: Option<JwtClaims>) -> String {
    claims.map_or_else(|| "stranger".to_owned(), |c| c.identifier.to_string())
}

async fn get_text(app: Router, uri: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().uri(uri);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

fn app(auth: jwthenticator_tower::JwtAuth) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/greet", get(greet))
        .layer(auth)
}

#[tokio::test]
async fn the_extractor_yields_the_verified_claims() {
    let (status, body) = get_text(app(layer()), "/whoami", Some(&valid_token())).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, IDENTIFIER));
}

#[tokio::test]
async fn the_optional_extractor_yields_none_without_a_token_in_optional_mode() {
    let app = app(layer().with_optional(true));
    let (status, body) = get_text(app.clone(), "/greet", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "stranger"));
    let (status, body) = get_text(app.clone(), "/greet", Some(&valid_token())).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, IDENTIFIER));
    // The required extractor rejects as the layer would have.
    let (status, _) = get_text(app, "/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_layer_rejects_before_the_router_runs_a_handler() {
    let (status, body) = get_text(app(layer()), "/whoami", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, ""));
}
