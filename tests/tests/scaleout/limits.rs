//! The failure limits hold for the fleet: three replicas on one PostgreSQL behind nginx count
//! failed attempts together, so a guesser gets the limit once, not once per replica.

use std::collections::BTreeMap;
use std::time::Duration;

use jwthenticator_tests::{PgDatabase, enroll, post_json as post};
use serde_json::json;

use crate::support::{Nginx, replicas};

#[tokio::test]
async fn three_replicas_behind_nginx_refuse_after_the_fleet_wide_limit() {
    let database = PgDatabase::create("jwt_limits").await;
    let servers = replicas(
        &database.url("postgres"),
        3,
        &[
            ("AUTH_FAILURES_PER_IDENTIFIER", "5"),
            ("AUTH_FAILURE_WINDOW", "60"),
        ],
    )
    .await;
    let nginx = Nginx::round_robin(&servers).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let enrolled = enroll(&client, servers[0].base_url()).await;
    // The windows are aligned to the clock: start well inside one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if now % 60 > 45 {
        tokio::time::sleep(Duration::from_secs(61 - now % 60)).await;
    }

    let guess = json!({"key": "not-the-key-of-this-device", "identifier": enrolled.identifier});
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let (status, _) = post(
            &client,
            format!("{}/authenticate", nginx.url),
            guess.clone(),
        )
        .await;
        statuses.push(status);
    }
    let mut tally = BTreeMap::new();
    for status in &statuses {
        *tally.entry(*status).or_insert(0) += 1;
    }
    println!("30 guesses through nginx over 3 replicas, limit 5: {tally:?}");
    assert_eq!(
        statuses[..5],
        [401; 5],
        "the first five guesses are decided: {statuses:?}"
    );
    assert!(
        statuses[5..].iter().all(|s| *s == 429),
        "every later guess is refused, whichever replica gets it: {statuses:?}"
    );
    // The refusal is uniform: the right key from the same address is refused too meanwhile.
    let (status, _) = post(
        &client,
        format!("{}/authenticate", nginx.url),
        json!({"key": enrolled.key, "identifier": enrolled.identifier}),
    )
    .await;
    assert_eq!(status, 429);
    let refused_by: usize = servers
        .iter()
        .filter(|s| s.logs().contains("too many failed attempts"))
        .count();
    assert_eq!(refused_by, 3, "every replica refused some");
    nginx.stop().await;
    drop(servers);
}
