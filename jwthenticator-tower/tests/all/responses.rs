//! gRPC answers, custom rejection builders, and the error in the response extensions.

use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use jwthenticator_tower::{AuthError, AuthErrorKind, GrpcMode};

use crate::support::*;

fn grpc_request(token: Option<&str>) -> Request<String> {
    let mut request = request(token);
    request.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    request
}

fn header<'a>(response: &'a Response<String>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |value| value.to_str().expect("ASCII"))
}

#[tokio::test]
async fn grpc_calls_get_unauthenticated_with_http_200() {
    let response = send(&layer(), grpc_request(None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "grpc-status"), "16");
    assert_eq!(header(&response, "content-type"), "application/grpc");
    assert!(!header(&response, "grpc-message").is_empty());

    let forged = signed(&keys().attacker, KID, &claims());
    let response = send(&layer(), grpc_request(Some(&forged))).await;
    assert_eq!(header(&response, "grpc-status"), "16");
    assert!(
        header(&response, "grpc-message").contains("signature does not verify"),
        "{}",
        header(&response, "grpc-message")
    );
}

#[tokio::test]
async fn a_valid_token_on_a_grpc_call_reaches_the_handler() {
    let response = send(&layer(), grpc_request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "grpc-status"), "");
    assert!(response.body().contains(IDENTIFIER));
}

#[tokio::test]
async fn grpc_mode_can_be_forced_or_turned_off() {
    let always = layer().with_grpc_mode(GrpcMode::Always);
    let response = send(&always, request(None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "grpc-status"), "16");

    let never = layer().with_grpc_mode(GrpcMode::Never);
    let response = send(&never, grpc_request(None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&response, "grpc-status"), "");
}

#[tokio::test]
async fn a_custom_rejection_builder_shapes_the_response_and_the_error_is_still_attached() {
    let layer = layer().with_rejection(|error: &AuthError, request: &Parts| {
        let mut response = Response::new(format!(
            r#"{{"error":"{}","path":"{}"}}"#,
            error.kind().as_str(),
            request.uri.path()
        ));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
    });
    let response = send(&layer, request(None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.body(),
        r#"{"error":"missing_token","path":"/orders"}"#
    );
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(AuthErrorKind::MissingToken)
    );
}
