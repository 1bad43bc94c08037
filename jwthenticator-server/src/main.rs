//! `jwthenticator-server`: parse the command line, then serve (the default) or run a subcommand.
//! See `--help`.

use std::process::ExitCode;

use clap::Parser;
use jwthenticator_server::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    jwthenticator_server::init_tracing(cli.config.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
