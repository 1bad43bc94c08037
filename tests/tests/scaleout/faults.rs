//! Database faults, not only outages, on the test's own PostgreSQL cluster: the server
//! processes frozen (SIGSTOP) for 10 s, a statement blocked by a lock, the pool exhausted by
//! requests stuck behind that lock, the cluster restarted in the middle of batched statements.
//! Requests that need the database answer 503 with `Retry-After` within `DB_TIMEOUT` (never a
//! hang, never a 500), validation and `/jwks` keep answering, and the server recovers without
//! a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jwthenticator_tests::{Enrolled, TestServer, enroll};
use serde_json::json;
use sqlx::Connection;

use crate::support::{BINARY, OwnCluster, SECRET};

/// The server's database deadline in these tests, seconds.
const DB_TIMEOUT: u64 = 2;
/// The longest any answer may take: the deadline and a margin for a loaded machine.
const SLOWEST: Duration = Duration::from_secs(DB_TIMEOUT + 3);

/// What the load saw during one fault.
#[derive(Debug, Default)]
struct Seen {
    requests: u64,
    unavailable: u64,
    unavailable_without_retry_after: u64,
    server_errors: Vec<String>,
    /// Answers of /validate and /jwks other than 200, and any request that got no answer or
    /// took longer than [`SLOWEST`].
    failures: Vec<String>,
    slowest: Duration,
}

/// Concurrent clients, one device each, sending authenticate (needs the database), validate and
/// jwks (do not) until `stop`. (One device's concurrent attempts would queue in the failure
/// limiter instead, which makes them wait for the verdicts ahead of them.)
async fn load(server: String, devices: Vec<Enrolled>, stop: Arc<AtomicBool>) -> Seen {
    let client = reqwest::Client::builder()
        .timeout(SLOWEST + Duration::from_secs(10))
        .build()
        .expect("client");
    let mut tasks = tokio::task::JoinSet::new();
    for (worker, enrolled) in devices.into_iter().enumerate() {
        let (client, server, stop) = (client.clone(), server.clone(), stop.clone());
        tasks.spawn(async move {
            let mut seen = Seen::default();
            let mut turn = worker;
            while !stop.load(Ordering::Relaxed) {
                let (needs_database, request) = match turn % 3 {
                    0 => (
                        true,
                        client
                            .post(format!("{server}/authenticate"))
                            .json(&json!({"key": enrolled.key, "identifier": enrolled.identifier})),
                    ),
                    1 => (
                        false,
                        client
                            .post(format!("{server}/validate"))
                            .json(&json!({"jwt": enrolled.jwt})),
                    ),
                    _ => (false, client.get(format!("{server}/jwks"))),
                };
                turn += 1;
                let started = Instant::now();
                let outcome = request.send().await;
                let took = started.elapsed();
                seen.requests += 1;
                seen.slowest = seen.slowest.max(took);
                if took > SLOWEST {
                    seen.failures.push(format!("an answer took {took:?}"));
                }
                match outcome {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if status == 503 {
                            seen.unavailable += 1;
                            if !response.headers().contains_key("retry-after") {
                                seen.unavailable_without_retry_after += 1;
                            }
                        }
                        if status >= 500 && status != 503 {
                            seen.server_errors.push(status.to_string());
                        }
                        if !needs_database && status != 200 {
                            seen.failures.push(format!("{status} without the database"));
                        }
                        if needs_database && status != 200 && status != 503 {
                            seen.failures.push(format!("authenticate {status}"));
                        }
                    }
                    Err(err) => seen.failures.push(format!("no answer: {err}")),
                }
                if needs_database {
                    // Paced, so that the load does not only measure the deadline.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            seen
        });
    }
    let mut all = Seen::default();
    while let Some(seen) = tasks.join_next().await {
        let seen = seen.expect("load task");
        all.requests += seen.requests;
        all.unavailable += seen.unavailable;
        all.unavailable_without_retry_after += seen.unavailable_without_retry_after;
        all.server_errors.extend(seen.server_errors);
        all.failures.extend(seen.failures);
        all.slowest = all.slowest.max(seen.slowest);
    }
    all
}

/// How long after `since` authenticate answers 200 again.
async fn recovery(server: &TestServer, enrolled: &Enrolled, since: Instant) -> Duration {
    let client = reqwest::Client::builder()
        .timeout(SLOWEST)
        .build()
        .expect("client");
    for _ in 0..300 {
        let answer = client
            .post(server.url("/authenticate"))
            .json(&json!({"key": enrolled.key, "identifier": enrolled.identifier}))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "authenticate did not recover within 30 s:\n{}",
        server.logs()
    );
}

/// Runs the load of `devices` while `fault` runs, then checks what it saw and says it.
async fn under_load<F, Fut>(
    name: &str,
    server: &TestServer,
    devices: &[Enrolled],
    fault: F,
) -> String
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(
        server.base_url().to_owned(),
        devices.to_vec(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    fault().await;
    let ended = Instant::now();
    let recovered = recovery(server, &devices[0], ended).await;
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.expect("load");
    let summary = format!(
        "{name}: {} requests, {} answered 503 ({} without Retry-After), {} 5xx other than 503, \
         {} failures, slowest answer {:?}, recovered {recovered:?} after the fault ended",
        seen.requests,
        seen.unavailable,
        seen.unavailable_without_retry_after,
        seen.server_errors.len(),
        seen.failures.len(),
        seen.slowest,
    );
    assert!(
        seen.server_errors.is_empty(),
        "{name}: {:?}",
        seen.server_errors
    );
    assert!(
        seen.failures.is_empty(),
        "{name}: {:?}\n{}",
        seen.failures,
        server.logs()
    );
    assert_eq!(seen.unavailable_without_retry_after, 0, "{name}");
    assert!(seen.unavailable > 0, "{name}: the fault was felt");
    assert!(
        recovered < Duration::from_secs(10),
        "{name}: recovered in {recovered:?}"
    );
    summary
}

#[tokio::test]
async fn database_faults_answer_503_in_time_and_recover_without_a_restart() {
    let summaries = tokio::time::timeout(Duration::from_secs(150), faults())
        .await
        .expect("bounded in time");
    for summary in summaries {
        println!("{summary}");
    }
}

async fn faults() -> Vec<String> {
    let cluster = OwnCluster::start().await;
    let server = TestServer::builder(BINARY)
        .env("DATABASE_URL", cluster.url())
        .env("KEY_ENCRYPTION_SECRET", SECRET)
        .env("DB_TIMEOUT", DB_TIMEOUT.to_string())
        .env("DB_MAX_CONNECTIONS", "4")
        .start()
        .await;
    let mut summaries = Vec::new();
    let client = reqwest::Client::new();
    let mut devices = Vec::new();
    for _ in 0..24 {
        devices.push(enroll(&client, server.base_url()).await);
    }

    summaries.push(
        under_load(
            "SIGSTOP of PostgreSQL for 10 s",
            &server,
            &devices[..6],
            || async {
                cluster.signal_all("STOP").await;
                tokio::time::sleep(Duration::from_secs(10)).await;
                cluster.signal_all("CONT").await;
            },
        )
        .await,
    );

    // One transaction holds an exclusive lock on the keys: every statement reading them
    // blocks, holds its connection, and the pool (4) runs out for the 24 clients.
    summaries.push(
        under_load(
            "a statement blocked by a lock, the pool exhausted behind it",
            &server,
            &devices,
            || async {
                let mut locker = sqlx::PgConnection::connect(&cluster.url())
                    .await
                    .expect("connect");
                let mut transaction = locker.begin().await.expect("begin");
                sqlx::query("LOCK TABLE keys IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut *transaction)
                    .await
                    .expect("lock");
                tokio::time::sleep(Duration::from_secs(6)).await;
                transaction.rollback().await.expect("release");
            },
        )
        .await,
    );

    summaries.push(
        under_load(
            "the cluster restarted in the middle of batched statements",
            &server,
            &devices[..12],
            || async {
                cluster.down().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                cluster.up().await;
            },
        )
        .await,
    );
    let logs = server.logs();
    assert!(!logs.contains("status=500"), "no request ended in a 500");
    summaries
}
