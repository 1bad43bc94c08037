//! Per-request cost of the `JwtAuth` layer in front of a `service_fn`, without sockets:
//! unprotected, a repeated token (a hit in the cache of verified tokens), every token new (a
//! miss: signature check, claims, cache insert) and the cache turned off.
//!
//! `cargo bench -p jwthenticator-tower --bench layer`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use jwthenticator_core::{Claims, Jwk, Jwks};
use jwthenticator_tower::JwtAuth;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Cache size of the "every token new" layer and the tokens cycled through it. The cache keeps
/// some tokens it has seen twice: with 8 times as many tokens as entries, 1 lookup in 9 still
/// hit; with 80 times, about 1 in 100 does.
const MISS_CACHE_SIZE: usize = 100;
const MISS_TOKENS: usize = 80 * MISS_CACHE_SIZE;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWKS of a new RSA key and `count` distinct RS256 tokens it signed, as header values.
fn keys_and_tokens(count: usize) -> (Jwks, Vec<HeaderValue>) {
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("generates an RSA key");
    let pkcs8 = pair.as_der().expect("encodes PKCS#8");
    let private = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref()).expect("reads PKCS#8");
    let jwks = Jwks {
        keys: vec![Jwk::rsa(
            "bench",
            "RS256",
            b64(private.n().to_bytes_be()),
            b64(private.e().to_bytes_be()),
        )],
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = b64(r#"{"alg":"RS256","kid":"bench","typ":"JWT"}"#);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let tokens = (0..count)
        .map(|_| {
            let claims = serde_json::json!({
                "token_id": uuid::Uuid::new_v4(),
                "identifier": "0a9e0b54-8c1c-4c49-8bb6-0a5e0cf0f3a1",
                "iat": now,
                "exp": now + 3600,
            });
            let input = format!("{header}.{}", b64(claims.to_string()));
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                .expect("signs");
            HeaderValue::try_from(format!("Bearer {input}.{}", b64(signature)))
                .expect("a header value")
        })
        .collect();
    (jwks, tokens)
}

async fn handler(request: Request<String>) -> Result<Response<String>, Infallible> {
    let verified = request.extensions().get::<Claims>().is_some();
    Ok(Response::new(
        if verified { "claims" } else { "open" }.to_owned(),
    ))
}

/// One request through a clone of `service` (as axum and hyper call a service), driven to
/// completion without a runtime: nothing in it waits.
fn call<S>(service: &S, token: Option<&HeaderValue>) -> StatusCode
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
{
    let mut request = Request::new(String::new());
    if let Some(token) = token {
        request.headers_mut().insert(AUTHORIZATION, token.clone());
    }
    let response = service
        .clone()
        .oneshot(request)
        .now_or_never()
        .expect("completes without waiting")
        .expect("infallible");
    response.status()
}

fn layer(c: &mut Criterion) {
    let (jwks, tokens) = keys_and_tokens(MISS_TOKENS);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let unprotected = ServiceBuilder::new().service(service_fn(handler));
    let protected = |cache_size: usize| {
        ServiceBuilder::new()
            .layer(JwtAuth::from_jwks(jwks.clone()).with_token_cache_size(cache_size))
            .service(service_fn(handler))
    };
    let cached = protected(10_000);
    let small_cache = protected(MISS_CACHE_SIZE);
    let uncached = protected(0);
    let token = &tokens[0];
    assert_eq!(call(&cached, Some(token)), StatusCode::OK);
    assert_eq!(call(&uncached, Some(token)), StatusCode::OK);
    assert_eq!(call(&cached, None), StatusCode::UNAUTHORIZED);

    let mut group = c.benchmark_group("tower layer per request");
    group.bench_function("unprotected", |b| {
        b.iter(|| call(&unprotected, black_box(Some(token))))
    });
    group.bench_function("JwtAuth, repeated token (cache hit)", |b| {
        b.iter(|| call(&cached, black_box(Some(token))))
    });
    // Criterion runs the routine once per sample: an iterator made in it would start over each
    // time, and the first tokens, seen again and again, would be hits.
    let mut next_token = tokens.iter().cycle();
    group.bench_function("JwtAuth, every token new (cache miss)", |b| {
        b.iter(|| call(&small_cache, next_token.next()))
    });
    group.bench_function("JwtAuth, cache off", |b| {
        b.iter(|| call(&uncached, black_box(Some(token))))
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
