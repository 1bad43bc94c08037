//! `jwthenticator-server`: configuration → database → keys → serve. See `--help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    jwthenticator_server::init_tracing();
    let config = jwthenticator_server::Config::parse();
    match jwthenticator_server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
