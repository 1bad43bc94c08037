//! Tests of the middleware and the admin client against fake servers on loopback.
//!
//! The fake servers run on the test's runtime; tests that exercise expiry, deadlines and
//! backoff pause its `tokio::time` clock and advance it.

mod admin;
mod concurrency;
mod fake_target;
mod fake_token_server;
mod headers;
mod retry;
mod server_calls;
mod support;
mod tokens;
