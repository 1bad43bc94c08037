//! `client`: what the reqwest middleware adds to a request when it holds a fresh JWT.
//!
//! A loopback axum server answers `GET /`. Three clients send sequential requests on one
//! kept-alive connection each: a plain `reqwest::Client` that sets the same `Authorization`
//! header itself, a `reqwest-middleware` client without middleware that does the same, and a
//! client with `JwtAuthMiddleware`. They take turns within every round, in a rotating order,
//! so that the machine's noise falls on all alike; overheads are medians of the rounds' ratios.
//!
//! Loopback requests vary by a few percent from round to round, as much as the middleware could
//! cost, so its own CPU time is measured without a network too: two middleware chains that end
//! in a stub answering every request, one with `JwtAuthMiddleware` in front.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue};
use jwthenticator_reqwest::JwtAuthMiddleware;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use uuid::Uuid;

/// The end of a middleware chain that answers every request itself, without a network.
struct Stub;

#[async_trait::async_trait]
impl Middleware for Stub {
    async fn handle(
        &self,
        _request: reqwest::Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Ok(reqwest::Response::from(http::Response::new("ok")))
    }
}

/// Median over `rounds` of the time per request that `with` takes more than `without`, in µs:
/// the two clients' chains end in [`Stub`], so only the middleware's own work differs.
async fn cpu_cost_us(
    with: &ClientWithMiddleware,
    without: &ClientWithMiddleware,
    url: &str,
    requests: u32,
    rounds: u32,
) -> anyhow::Result<f64> {
    let send = |client: &ClientWithMiddleware| {
        let request = client.get(url);
        async move {
            request.send().await?;
            anyhow::Ok(())
        }
    };
    let mut differences = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let with_time = timed(requests, || send(with)).await?;
        let without_time = timed(requests, || send(without)).await?;
        differences.push(
            (with_time.as_secs_f64() - without_time.as_secs_f64()) * 1e6 / f64::from(requests),
        );
    }
    differences.sort_by(f64::total_cmp);
    differences
        .get(differences.len() / 2)
        .copied()
        .context("no rounds")
}

/// A JWT the middleware considers fresh for the whole run. The client never checks the
/// signature, so a dummy one does.
fn fresh_jwt() -> anyhow::Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "token_id": Uuid::new_v4(), "identifier": Uuid::new_v4(), "iat": exp - 3600, "exp": exp
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode([7u8; 256]);
    Ok(format!("{header}.{payload}.{signature}"))
}

async fn timed<F, Fut>(requests: u32, mut send: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    for _ in 0..requests {
        send().await?;
    }
    Ok(started.elapsed())
}

/// Prints the mean time per request of each client (`plain_us`, `bare_us`, `middleware_us`)
/// and, as the median of the rounds' ratios, the overhead of the middleware client over the
/// plain one (`overhead_pct`), of reqwest-middleware's own client over the plain one
/// (`bare_pct`), and of `JwtAuthMiddleware` over reqwest-middleware's client (`own_pct`); then
/// the CPU time `JwtAuthMiddleware` adds to a request without a network (`own_cpu_us`), and
/// that as a share of a plain loopback request (`own_cpu_pct`).
pub(crate) fn run(requests: u32, rounds: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        requests > 0 && rounds > 0,
        "requests and rounds must be positive"
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let (totals, own_cpu_us) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{address}/");

        let jwt = fresh_jwt()?;
        let header = HeaderValue::try_from(format!("Bearer {jwt}"))?;
        let plain_client = reqwest::Client::new();
        let bare_client = ClientBuilder::new(reqwest::Client::new()).build();
        let auth = JwtAuthMiddleware::builder(url.clone(), Uuid::new_v4())
            .with_jwt(jwt)
            .with_allowed_hosts(["127.0.0.1"])
            .build()?;
        let middleware_client = ClientBuilder::new(reqwest::Client::new())
            .with(auth)
            .build();
        let check = |response: reqwest::Response| async move {
            anyhow::ensure!(response.status().is_success(), "{}", response.status());
            response.bytes().await?;
            Ok(())
        };
        let plain = || async {
            check(
                plain_client
                    .get(&url)
                    .header(AUTHORIZATION, header.clone())
                    .send()
                    .await?,
            )
            .await
        };
        let bare = || async {
            check(
                bare_client
                    .get(&url)
                    .header(AUTHORIZATION, header.clone())
                    .send()
                    .await?,
            )
            .await
        };
        let middleware = || async { check(middleware_client.get(&url).send().await?).await };
        // Warm up the connections and code paths.
        timed(requests / 4 + 1, plain).await?;
        timed(requests / 4 + 1, bare).await?;
        timed(requests / 4 + 1, middleware).await?;

        // Per round: the time of each client, which go in a rotating order.
        let mut times = Vec::with_capacity(rounds as usize);
        for round in 0..rounds {
            let mut round_times = [Duration::ZERO; 3];
            for turn in 0..3 {
                let client = (turn + round as usize) % 3;
                round_times[client] = match client {
                    0 => timed(requests, plain).await?,
                    1 => timed(requests, bare).await?,
                    _ => timed(requests, middleware).await?,
                };
            }
            times.push(round_times);
        }

        let stub_without = ClientBuilder::new(reqwest::Client::new())
            .with(Stub)
            .build();
        let stub_with = ClientBuilder::new(reqwest::Client::new())
            .with(
                JwtAuthMiddleware::builder(url.clone(), Uuid::new_v4())
                    .with_jwt(fresh_jwt()?)
                    .with_allowed_hosts(["127.0.0.1"])
                    .build()?,
            )
            .with(Stub)
            .build();
        cpu_cost_us(&stub_with, &stub_without, &url, requests, 1).await?;
        let own_cpu_us = cpu_cost_us(&stub_with, &stub_without, &url, requests * 5, rounds).await?;
        anyhow::Ok((times, own_cpu_us))
    })?;
    let per_request = |client: usize| {
        let total: Duration = totals.iter().map(|round| round[client]).sum();
        total.as_secs_f64() * 1e6 / f64::from(requests * rounds)
    };
    let overhead = |client: usize, over: usize| -> anyhow::Result<f64> {
        let mut ratios: Vec<f64> = totals
            .iter()
            .map(|round| round[client].as_secs_f64() / round[over].as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios.get(ratios.len() / 2).context("no rounds")?;
        Ok((median - 1.0) * 100.0)
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "plain_us\t{:.2}", per_request(0))?;
    writeln!(out, "bare_us\t{:.2}", per_request(1))?;
    writeln!(out, "middleware_us\t{:.2}", per_request(2))?;
    writeln!(out, "overhead_pct\t{:.2}", overhead(2, 0)?)?;
    writeln!(out, "bare_pct\t{:.2}", overhead(1, 0)?)?;
    writeln!(out, "own_pct\t{:.2}", overhead(2, 1)?)?;
    writeln!(out, "own_cpu_us\t{own_cpu_us:.3}")?;
    writeln!(
        out,
        "own_cpu_pct\t{:.2}",
        own_cpu_us / per_request(0) * 100.0
    )?;
    Ok(())
}
