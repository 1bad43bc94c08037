//! The JWThenticator load benchmark's helper binary; `bench/run.sh` drives it and `wrk`.
//!
//! - `crypto`: the machine's raw RS256 sign and verify rates on every core, on aws-lc-rs (the
//!   server's and the verifier's backend): the baselines the token endpoints are measured against.
//! - `tokens`: the JWKS of the server's key and as many distinct RS256 tokens signed with it as
//!   asked, for the "every token new" loads of the server and the tower layers.
//! - `protected`: one axum handler on loopback, unprotected, behind `jwthenticator-tower`, or
//!   behind `tower-oauth2-resource-server`, each with the same JWKS.
//! - `client`: the reqwest middleware's per-request cost against a plain client, interleaved.
//! - `soak`: a fixed-rate mixed load on replicas for minutes, a line per minute of latency,
//!   errors, RSS and open file descriptors of each replica (`bench/soak.sh`).
//! - `report`: the results file of a run as the table of `BENCHMARKS.md`, with ratios and targets.

mod client;
mod crypto;
mod protected;
mod report;
mod soak;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Helper binary of `bench/run.sh`.
#[derive(Debug, Parser)]
#[command(name = "jwthenticator-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Raw RS256 sign and verify rates on `threads` threads (one per core by default).
    Crypto {
        /// Threads, each signing (then verifying) as fast as it can.
        #[arg(long)]
        threads: Option<usize>,
        /// Seconds each rate is measured for.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Which rates: all of them, or only those with the key parsed once.
        #[arg(long, value_enum, default_value_t = crypto::Which::All)]
        which: crypto::Which,
    },
    /// The JWKS of the server's key, and `count` distinct RS256 tokens it signed, one per line.
    Tokens {
        /// How many tokens.
        #[arg(long)]
        count: usize,
        /// The server's signing key (PEM), as `RSA_PRIVATE_KEY_PATH` names it.
        #[arg(long)]
        private_key: PathBuf,
        /// Where the tokens go.
        #[arg(long)]
        tokens_out: PathBuf,
        /// Where the JWKS goes.
        #[arg(long)]
        jwks_out: PathBuf,
        /// Token lifetime, seconds.
        #[arg(long, default_value_t = 3600)]
        lifetime: i64,
    },
    /// Serves `GET /` on `listen` behind the chosen layer until SIGTERM or SIGINT.
    Protected {
        /// Loopback address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// The JWKS the layer verifies with.
        #[arg(long)]
        jwks: PathBuf,
        /// Which layer protects the handler.
        #[arg(long, value_enum)]
        layer: protected::Layer,
    },
    /// Per-request time of the reqwest middleware (with a fresh token) against a plain client.
    Client {
        /// Requests per round and per client.
        #[arg(long, default_value_t = 2000)]
        requests: u32,
        /// Rounds; the clients alternate within each round.
        #[arg(long, default_value_t = 10)]
        rounds: u32,
    },
    /// A fixed-rate mixed load on replicas; prints a line per minute and the verdict.
    Soak {
        /// Base URL of a replica (`http://127.0.0.1:port`); once per replica.
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        /// Process id of the replica, in the order of the URLs.
        #[arg(long = "pid", required = true)]
        pids: Vec<u32>,
        /// Requests per second, every kind and replica together.
        #[arg(long, default_value_t = 150)]
        rate: u32,
        /// Minutes of load.
        #[arg(long, default_value_t = 10)]
        minutes: u32,
        /// Clients, each with its own key and refresh-token chain.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Deadline of every request, seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Prints the results file of a run as a table.
    Report {
        /// The tab-separated results `run.sh` collected.
        #[arg(long)]
        results: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crypto {
            threads,
            seconds,
            which,
        } => crypto::run(threads, seconds, which),
        Command::Tokens {
            count,
            private_key,
            tokens_out,
            jwks_out,
            lifetime,
        } => tokens::run(count, &private_key, &tokens_out, &jwks_out, lifetime),
        Command::Protected {
            listen,
            jwks,
            layer,
        } => protected::run(listen, &jwks, layer),
        Command::Client { requests, rounds } => client::run(requests, rounds),
        Command::Soak {
            urls,
            pids,
            rate,
            minutes,
            clients,
            timeout,
        } => soak::run(soak::Settings {
            urls,
            pids,
            rate,
            minutes,
            clients,
            timeout: std::time::Duration::from_secs(timeout),
        }),
        Command::Report { results } => report::run(&results),
    }
}
