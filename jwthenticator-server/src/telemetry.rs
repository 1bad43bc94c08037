//! Prometheus metrics, with the `metrics` crate and its Prometheus exporter, served at
//! `/metrics` beside the internal API.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `route`, `method`, `status` |
//! | `http_request_duration_seconds` | histogram | `route`, `method` |
//! | `jwthenticator_token_requests_total` | counter | `operation` (authenticate, refresh), `outcome` (issued, refused, rate_limited) |
//! | `jwthenticator_token_refusals_total` | counter | `operation`, `reason` |
//! | `jwthenticator_validations_total` | counter | `endpoint` (validate, validate_request), `outcome` (valid, invalid, missing_token), `reason` |
//! | `jwthenticator_revocations_total` | counter | `kind` (key, refresh_token) |
//! | `jwthenticator_refresh_token_reuse_total` | counter | |
//! | `jwthenticator_purged_rows_total` | counter | |
//! | `jwthenticator_db_query_duration_seconds` | histogram | `operation` |
//! | `jwthenticator_db_batch_size` | summary | `statement` (find_key, insert_refresh_token, find_refresh_token; PostgreSQL only) |
//! | `jwthenticator_db_pool_connections` | gauge | `state` (idle, in_use) |
//! | `jwthenticator_db_pool_max_connections` | gauge | |
//! | `jwthenticator_signing_key_age_seconds` | gauge | |
//! | `jwthenticator_key_hash_upgrades_total` | counter | |
//! | `jwthenticator_shared_key_unreadable_total` | counter | |
//! | `jwthenticator_build_info` | gauge | `version` |

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::web::Data;
use poem::{IntoResponse, Response, handler};

use crate::state::AppState;

/// Latency buckets, in seconds: from 100 µs (a cached validation) to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder; installed once, shared by every app in the process.
pub(crate) fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".to_owned()),
                LATENCY_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed (an embedding application's): then
        // this handle renders nothing of ours, which is all we can do.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        metrics::gauge!("jwthenticator_build_info", "version" => env!("CARGO_PKG_VERSION"))
            .set(1.0);
        handle
    })
}

/// How often histogram samples are folded into their buckets (the exporter's own default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds the recorder's histogram samples into their buckets every few seconds, for as long as
/// it runs. A recorder built with `build_recorder` keeps every sample until it is rendered, so
/// without this a server whose `/metrics` nobody scrapes grows with every request it answers.
pub(crate) async fn upkeep() {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        ticks.tick().await;
        handle().run_upkeep();
    }
}

/// `GET /metrics`: the Prometheus text format, with the gauges read at scrape time.
#[handler]
pub(crate) fn scrape(Data(state): Data<&Arc<AppState>>) -> Response {
    let pool = state.store.pool_status();
    metrics::gauge!("jwthenticator_db_pool_connections", "state" => "idle")
        .set(f64::from(pool.idle));
    metrics::gauge!("jwthenticator_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.size.saturating_sub(pool.idle)));
    metrics::gauge!("jwthenticator_db_pool_max_connections").set(f64::from(pool.max));
    let age = SystemTime::now()
        .duration_since(state.current_keys().signing_key_created())
        .unwrap_or_default();
    metrics::gauge!("jwthenticator_signing_key_age_seconds").set(age.as_secs_f64());
    handle()
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response()
}
