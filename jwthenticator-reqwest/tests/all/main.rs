//! Tests of the middleware and the admin client against fake servers on loopback.
//!
//! The fake servers run on their own runtime on real time; tests that exercise expiry pause
//! their own `tokio::time` clock and advance it.

mod admin;
mod concurrency;
mod fake_target;
mod fake_token_server;
mod headers;
mod retry;
mod support;
mod tokens;
