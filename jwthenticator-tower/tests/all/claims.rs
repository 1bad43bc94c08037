//! What the handler sees: the claims of a valid token, nothing in optional mode without a token,
//! and claims of other issuers through a type of the caller's.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use jwthenticator_core::Claims;
use serde::Deserialize;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::support::*;

#[tokio::test]
async fn the_handler_gets_the_typed_claims_with_the_extra_ones() {
    let mut claims = claims();
    claims["scope"] = json!("orders:read");
    let token = signed(&keys().ours, KID, &claims);
    let response = send(&layer(), request(Some(&token))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen: Claims = serde_json::from_str(response.body()).expect("claims JSON");
    assert_eq!(seen.identifier.to_string(), IDENTIFIER);
    assert_eq!(seen.iss.as_deref(), Some(ISSUER));
    assert_eq!(seen.extra.get("scope"), Some(&json!("orders:read")));
}

#[tokio::test]
async fn optional_mode_lets_a_request_without_token_through_without_claims() {
    let layer = layer().with_optional(true);
    let response = send(&layer, request(None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "anonymous");
}

#[tokio::test]
async fn optional_mode_still_verifies_a_token_that_is_there() {
    let layer = layer().with_optional(true);
    let response = send(&layer, request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.body().contains(IDENTIFIER));

    let forged = signed(&keys().attacker, KID, &claims());
    let response = send(&layer, request(Some(&forged))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains("invalid_token"));
}

/// The claims of an issuer whose tokens carry no `token_id` or `identifier`.
#[derive(Debug, Clone, Deserialize)]
struct OtherIssuerClaims {
    sub: String,
    exp: i64,
}

#[tokio::test]
async fn claims_of_other_issuers_are_read_as_the_callers_type() {
    let payload = json!({"sub": "device-7", "exp": now() + 600, "aud": AUDIENCE, "iss": ISSUER});
    let token = signed(&keys().ours, KID, &payload);
    let service = ServiceBuilder::new()
        .layer(layer().with_claims::<OtherIssuerClaims>())
        .service(service_fn(|request: Request<String>| async move {
            let claims = request
                .extensions()
                .get::<OtherIssuerClaims>()
                .expect("claims of the caller's type");
            assert!(claims.exp > now());
            Ok::<_, Infallible>(Response::new(claims.sub.clone()))
        }));
    let response = service
        .oneshot(request(Some(&token)))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "device-7");

    // The same token lacks what JWThenticator claims require.
    let response = send(&layer(), request(Some(&token))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
