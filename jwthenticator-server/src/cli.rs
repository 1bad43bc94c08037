//! The command line: `serve` (the default) and the operator's subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use jwthenticator_core::Algorithm;
use jwthenticator_core::redact_url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::config::{Config, Database};
use crate::key_hash::KeyHasher;
use crate::keys::source::LocalKeys;
use crate::keys::{KeySource, MissingKeyFiles, PrivateKey, SharedKeys};
use crate::store::{self, KeySelector, Registration, Store};

/// `jwthenticator-server [OPTIONS] [COMMAND]`: every option is also an environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "jwthenticator-server",
    version,
    about = "Key-to-JWT authentication server for services and IoT fleets.",
    long_about = None
)]
pub struct Cli {
    /// What to do; without a command the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The server's configuration (flags or environment variables).
    #[command(flatten)]
    pub config: Config,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Write a new signing key pair as PEM files (the private one readable by its owner only).
    Keygen {
        /// RS256, RS384, RS512, PS256, PS384, PS512, ES256 or EdDSA.
        #[arg(long, default_value = "RS256", value_parser = jwthenticator_core::parse_signing_algorithm)]
        algorithm: Algorithm,
        /// RSA key size in bits (2048, 3072, 4096).
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        /// Where to write the private key (refuses to overwrite).
        #[arg(long)]
        private_key_out: PathBuf,
        /// Where to write the public key (refuses to overwrite).
        #[arg(long)]
        public_key_out: Option<PathBuf>,
    },
    /// Register a key for an identifier in the configured database (or extend its expiry).
    RegisterKey {
        /// The identifier (UUID) the key is for.
        #[arg(long)]
        identifier: Uuid,
        /// The key; read from standard input when omitted, so it stays out of `ps`.
        #[arg(long, hide_env_values = true)]
        key: Option<String>,
    },
    /// Revoke a key (and its refresh tokens) in the configured database.
    RevokeKey {
        /// The key; read from standard input when neither --key nor --key-id is given.
        #[arg(long, conflicts_with = "key_id")]
        key: Option<String>,
        /// The key's id, as `GET /keys` lists it.
        #[arg(long)]
        key_id: Option<i64>,
    },
    /// Delete expired keys and expired or revoked refresh tokens now.
    Purge,
    /// Print the OpenAPI document.
    Openapi {
        /// yaml or json.
        #[arg(long, value_enum, default_value_t = SpecFormat::Yaml)]
        format: SpecFormat,
    },
    /// Print the effective configuration (secrets redacted) and check it; non-zero exit when
    /// it cannot work.
    CheckConfig,
    /// Exit 0 when the server on this machine (`PORT`, `URL_PREFIX`) answers `/health` with 200:
    /// for container health checks, where no curl is installed.
    Healthcheck,
}

/// Format of `openapi`'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpecFormat {
    /// YAML, as committed in `openapi.yaml`.
    Yaml,
    /// JSON, as served at `/openapi.json`.
    Json,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::app::run(config).await.map(|()| ExitCode::SUCCESS),
        Command::Keygen {
            algorithm,
            bits,
            private_key_out,
            public_key_out,
        } => keygen(algorithm, bits, &private_key_out, public_key_out.as_deref()),
        Command::RegisterKey { identifier, key } => {
            let key = key_or_stdin(key)?;
            let (store, hasher) = open_key_store(&config).await?;
            let hashes = hasher.for_registration(&key)?;
            let expires_at =
                chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(config.key_expiry)?);
            match store.register_key(&hashes, identifier, expires_at).await? {
                Registration::Registered => {
                    report(&format!(
                        "registered a key for {identifier} until {expires_at}"
                    ))?;
                    Ok(ExitCode::SUCCESS)
                }
                Registration::Revoked => {
                    bail!("this key was revoked and cannot be registered again")
                }
            }
        }
        Command::RevokeKey { key, key_id } => {
            let (store, hasher) = open_key_store(&config).await?;
            let hashes;
            let selector = match key_id {
                Some(id) => KeySelector::Id(id),
                None => {
                    hashes = hasher.hashes(&key_or_stdin(key)?);
                    KeySelector::Key(&hashes)
                }
            };
            let revoked = store.revoke_keys(selector, chrono::Utc::now()).await?;
            report(&format!(
                "revoked {} key(s) and {} refresh token(s)",
                revoked.keys, revoked.refresh_tokens
            ))?;
            Ok(if revoked.keys == 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Purge => {
            let store = open_store(&config).await?;
            let rows = store.purge_expired(chrono::Utc::now()).await?;
            report(&format!("purged {rows} expired or revoked row(s)"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi { format } => {
            let spec = match format {
                SpecFormat::Yaml => crate::openapi_yaml(),
                SpecFormat::Json => crate::openapi_json(),
            };
            report(spec.trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => check_config(&config).await,
        Command::Healthcheck => healthcheck(&config).await,
    }
}

/// Prints a line to standard output: the command's result.
fn report(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to standard output")
}

fn key_or_stdin(key: Option<String>) -> anyhow::Result<String> {
    if let Some(key) = key {
        return Ok(key);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the key from standard input")?;
    let key = line.trim_end_matches(['\r', '\n']).to_owned();
    if key.is_empty() {
        bail!("no key given: pass --key or write it to standard input");
    }
    Ok(key)
}

async fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    store::connect(&config.database()?, 2, config.db_deadline.limit())
        .await
        .context("opening the database")
}

/// The store and the key hasher the server uses, for the commands that take a key.
async fn open_key_store(config: &Config) -> anyhow::Result<(std::sync::Arc<dyn Store>, KeyHasher)> {
    let store = open_store(config).await?;
    let hasher = KeyHasher::open(&config.key_hashing, &config.database()?, store.as_ref())
        .await
        .context("setting up the key hashes")?;
    Ok((store, hasher))
}

fn write_new_file(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let written = if private {
        crate::private_files::create_file(path, contents.as_bytes())
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| file.write_all(contents.as_bytes()))
    };
    written.with_context(|| format!("creating {} (it must not exist yet)", path.display()))
}

fn keygen(
    algorithm: Algorithm,
    bits: u32,
    private_out: &Path,
    public_out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let key = PrivateKey::generate(algorithm, bits)?;
    write_new_file(private_out, &key.to_pem()?, true)?;
    if let Some(public_out) = public_out {
        write_new_file(public_out, &key.public_key().to_pem()?, false)?;
    }
    report(&format!(
        "wrote a {} key for {algorithm:?} to {} (kid {})",
        key.key_type(),
        private_out.display(),
        key.public_key().kid()
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn check_config(config: &Config) -> anyhow::Result<ExitCode> {
    report(&format!("{config:#?}"))?;
    let mut problems = Vec::new();
    let database = config.database();
    match &database {
        Ok(Database::Postgres {
            url,
            create_if_missing,
        }) => report(&format!(
            "database: PostgreSQL at {}{}",
            redact_url(url.expose()),
            if *create_if_missing {
                " (created if missing)"
            } else {
                ""
            }
        ))?,
        Ok(Database::Sqlite { url, .. }) => report(&format!("database: SQLite at {url}"))?,
        Err(err) => problems.push(format!("database: {err}")),
    }
    if let Err(err) = config.url_prefix() {
        problems.push(format!("URL_PREFIX: {err}"));
    }
    problems.extend(config.security.problems());
    for warning in config.security.warnings() {
        report(&format!("warning: {warning}"))?;
    }
    if let Ok(database) = &database {
        match config.key_hashing.source(database) {
            Ok(source) => report(&format!(
                "key hashes: {source}; new keys need at least {} characters",
                config.key_hashing.min_key_length
            ))?,
            Err(err) => problems.push(format!("key hashes: {err:#}")),
        }
    }
    if let Ok(database) = &database {
        match check_keys(config, database).await {
            Ok(line) => report(&format!("keys: {line}"))?,
            Err(err) => problems.push(format!("keys: {err:#}")),
        }
    }
    if problems.is_empty() {
        report("configuration OK")?;
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        report(&format!("error: {problem}"))?;
    }
    Ok(ExitCode::FAILURE)
}

/// What `check-config` says of the keys: where they come from, as the server decides it at
/// start ([`KeySource`]), and the `kid` it will sign with where that is known without side
/// effects (a key file that would be generated is not; a key of the process is not).
async fn check_keys(config: &Config, database: &Database) -> anyhow::Result<String> {
    let source = KeySource::from_config(config, database);
    let local = match &source {
        KeySource::Shared(secret) => {
            // Read without migrating: checking a new version's configuration must not change
            // the schema the running servers use.
            let Database::Postgres { url, .. } = database else {
                bail!("shared keys need PostgreSQL");
            };
            let store = store::PostgresStore::read_only(url.expose()).await?;
            let report = match SharedKeys::inspect(&store, secret).await {
                Err(err)
                    if err
                        .downcast_ref::<store::StoreError>()
                        .is_some_and(store::StoreError::is_missing_table) =>
                {
                    return Ok(format!(
                        "{source}; the database is not migrated yet (no server has started), \
                         the first replica to start creates the first key"
                    ));
                }
                other => other?,
            };
            let secret = if report.secret_checked {
                "KEY_ENCRYPTION_SECRET matches the stored keys"
            } else {
                "no keys sealed yet"
            };
            return Ok(match report.signing {
                Some(row) => format!(
                    "{source}; signing with kid {} ({}) until {}, {} stored; {secret}",
                    row.kid,
                    row.algorithm,
                    row.retires_at.and_utc(),
                    report.stored
                ),
                None => format!(
                    "{source}; none signs now, the first replica to start creates one; {secret}"
                ),
            });
        }
        KeySource::Local(local) => local,
    };
    let generated = match local {
        LocalKeys::Ephemeral => return Ok(source.to_string()),
        LocalKeys::Embedded(path) if !path.exists() => vec![path.clone()],
        LocalKeys::Embedded(_) => Vec::new(),
        LocalKeys::Configured(missing_files) => {
            let paths = [
                &config.rsa_private_key_path,
                &config.rsa_public_key_path,
                &config.jwt_private_key_path,
                &config.jwt_public_key_path,
            ];
            let missing: Vec<PathBuf> = paths
                .into_iter()
                .flatten()
                .filter(|path| !path.as_os_str().is_empty() && !path.exists())
                .cloned()
                .collect();
            let private_missing = [&config.rsa_private_key_path, &config.jwt_private_key_path]
                .into_iter()
                .flatten()
                .any(|path| missing.contains(path));
            // A missing private key file that is refused is reported by loading, which refuses
            // it before anything is written.
            if private_missing && *missing_files == MissingKeyFiles::Refuse {
                Vec::new()
            } else {
                missing
            }
        }
    };
    if !generated.is_empty() {
        let paths: Vec<String> = generated.iter().map(|p| p.display().to_string()).collect();
        return Ok(format!(
            "{source}; {} does not exist and will be generated at start",
            paths.join(", ")
        ));
    }
    // Nothing to create, so loading has no side effect.
    let keys = local.key_set(config)?;
    Ok(format!(
        "{source}; {} published, {}",
        keys.jwks().keys.len(),
        match keys.signer() {
            Some(signer) => format!(
                "signing with kid {} ({})",
                signer.kid(),
                jwthenticator_core::algorithm_name(signer.algorithm())
            ),
            None => "validate-only (no private key)".to_owned(),
        }
    ))
}

async fn healthcheck(config: &Config) -> anyhow::Result<ExitCode> {
    let path = format!("{}/health", config.url_prefix()?);
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", config.port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(head)) if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" => {
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_command_means_serve_and_options_stay_top_level() {
        let cli = Cli::try_parse_from(["jwthenticator-server", "--port", "9000"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.config.port, 9000);
        let cli = Cli::try_parse_from(["jwthenticator-server", "--data-dir", "/tmp/x", "purge"])
            .expect("parses");
        assert!(matches!(cli.command, Some(Command::Purge)));
    }
}
