//! Configuration: the Python original's environment variables, each also a `--flag`.
//!
//! The bottom of the server's module graph: the clap structs and the small types they are made
//! of, importing nothing else of the server. Each module above derives the typed settings it
//! needs from [`Config`] once (`VerifierSettings::from_config`, `IssueSettings::from_config`,
//! ...), so no module but the one that owns a setting reads it.

use std::path::PathBuf;

use clap::Parser;
use clap::builder::BoolishValueParser;
use jwthenticator_core::Algorithm;

/// Everything the server can be told. Every field is an environment variable of the Python
/// original (or a new one) and a `--flag`; flags win over the environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "jwthenticator-server",
    version,
    about = "Key-to-JWT authentication server for services and IoT fleets.",
    long_about = "Key-to-JWT authentication server for services and IoT fleets: clients registered \
with a secret key and a UUID authenticate for a short-lived signed JWT and a refresh token; \
gateways validate tokens at /validate_request or verify them locally against /jwks.\n\n\
Database: DATABASE_URL (sqlite:// or postgres://) if set; else any DB_URI/DB_USER/DB_PASS/\
DB_HOST/DB_NAME means PostgreSQL (the database is created if missing); else an embedded \
SQLite file in DATA_DIR."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Path prefix for every route, e.g. `/auth`.
    #[arg(long, env = "URL_PREFIX", default_value = "")]
    pub url_prefix: String,

    /// Disable the external API (authenticate, refresh, validate, validate_request).
    #[arg(long, env = "DISABLE_EXTERNAL_API", value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub disable_external_api: bool,

    /// Disable the internal API (register_key, is_key_registered).
    #[arg(long, env = "DISABLE_INTERNAL_API", value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub disable_internal_api: bool,

    /// JWT signing algorithm: RS256, RS384, RS512, PS256, PS384, PS512 (RSA key), ES256 (EC
    /// P-256 key) or EdDSA (Ed25519 key). The signing key must be of that type; a generated
    /// one is.
    #[arg(long, env = "JWT_ALGORITHM", default_value = "RS256", value_parser = jwthenticator_core::parse_signing_algorithm)]
    pub jwt_algorithm: Algorithm,

    /// Lifetime of an issued JWT, in seconds (the original's default: 25 hours).
    #[arg(long, env = "JWT_LEASE_TIME", default_value_t = 25 * 3600)]
    pub jwt_lease_time: u64,

    /// Comma-separated audiences written to `aud` and required on validation.
    #[arg(long, env = "JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,

    /// Clock skew tolerated when validating `exp`, `nbf` and `iat`, in seconds.
    #[arg(long, env = "JWT_LEEWAY", default_value_t = jwthenticator_core::DEFAULT_LEEWAY_SECS)]
    pub jwt_leeway: u64,

    /// How many validated tokens `/validate` and `/validate_request` remember (0: none). A
    /// token seen again is answered without its signature check until its `exp`; only tokens
    /// that passed every check are remembered, by their SHA-256, so the size changes no verdict.
    #[arg(long, env = "VALIDATION_CACHE_SIZE", default_value_t = 10_000)]
    pub validation_cache_size: usize,

    /// Lifetime of a registered key, in seconds (120 days; registering again extends it).
    #[arg(long, env = "KEY_EXPIRY", default_value_t = 120 * 86_400)]
    pub key_expiry: u64,

    /// Lifetime of a refresh token, in seconds (60 days).
    #[arg(long, env = "REFRESH_TOKEN_EXPIRY", default_value_t = 60 * 86_400)]
    pub refresh_token_expiry: u64,

    /// PEM public key of the signing key (SPKI; PKCS#1 also for RSA), of any type despite the
    /// name. Alone, the server validates but cannot issue tokens.
    #[arg(
        long,
        env = "RSA_PUBLIC_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub rsa_public_key: Option<String>,

    /// Neutral name of RSA_PUBLIC_KEY; set one of the two.
    #[arg(
        long,
        env = "JWT_PUBLIC_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub jwt_public_key: Option<String>,

    /// PEM private signing key (PKCS#8; PKCS#1 also for RSA, SEC1 also for EC), of any type
    /// despite the name.
    #[arg(
        long,
        env = "RSA_PRIVATE_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub rsa_private_key: Option<Secret>,

    /// Neutral name of RSA_PRIVATE_KEY; set one of the two.
    #[arg(
        long,
        env = "JWT_PRIVATE_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub jwt_private_key: Option<Secret>,

    /// File holding the PEM public key; generated together with the private key file when missing.
    #[arg(long, env = "RSA_PUBLIC_KEY_PATH", value_parser = key_path)]
    pub rsa_public_key_path: Option<PathBuf>,

    /// Neutral name of RSA_PUBLIC_KEY_PATH; set one of the two.
    #[arg(long, env = "JWT_PUBLIC_KEY_PATH", value_parser = key_path)]
    pub jwt_public_key_path: Option<PathBuf>,

    /// File holding the PEM private key; generated (of the type JWT_ALGORITHM needs) when missing.
    #[arg(long, env = "RSA_PRIVATE_KEY_PATH", value_parser = key_path)]
    pub rsa_private_key_path: Option<PathBuf>,

    /// Neutral name of RSA_PRIVATE_KEY_PATH; set one of the two.
    #[arg(long, env = "JWT_PRIVATE_KEY_PATH", value_parser = key_path)]
    pub jwt_private_key_path: Option<PathBuf>,

    /// Size in bits of a generated RSA key: 2048, 3072, 4096 or 8192 (unused for ES256 and EdDSA).
    #[arg(long, env = "RSA_KEY_SIZE", default_value_t = 2048)]
    pub rsa_key_size: u32,

    /// Comma-separated PEM public key files (SPKI) published in /jwks and accepted on
    /// validation besides the signing key: for a rotation, the next key before it signs and the
    /// previous key until its last token has expired (JWT_LEASE_TIME after the switch).
    /// RSA keys verify with JWT_ALGORITHM (RS256 when it is not RSA), EC P-256 keys with ES256,
    /// Ed25519 keys with EdDSA. A key listed twice, or equal to the signing key, is published once.
    #[arg(long, env = "PUBLISHED_PUBLIC_KEY_PATHS", value_delimiter = ',', value_parser = key_path)]
    pub published_public_key_paths: Vec<PathBuf>,

    /// Issuer written to the `iss` claim of every token and, when set, required on validation.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Database URL: `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// PostgreSQL URL as the original wrote it (a `+pg8000`/`+asyncpg` driver suffix is fine).
    #[arg(long, env = "DB_URI", hide_env_values = true)]
    pub db_uri: Option<Secret>,

    /// PostgreSQL user (default `postgres`).
    #[arg(long, env = "DB_USER")]
    pub db_user: Option<String>,

    /// PostgreSQL password.
    #[arg(long, env = "DB_PASS", hide_env_values = true)]
    pub db_pass: Option<Secret>,

    /// PostgreSQL host, optionally with `:port` (default `localhost`).
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,

    /// PostgreSQL database (default `jwthenticator`), created if missing.
    #[arg(long, env = "DB_NAME")]
    pub db_name: Option<String>,

    /// Directory of the embedded SQLite database and its generated signing key.
    #[arg(long, env = "DATA_DIR", default_value = "jwthenticator-data")]
    pub data_dir: PathBuf,

    /// Largest number of database connections per server process.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_SIZE", default_value_t = 64 * 1024)]
    pub max_body_size: usize,

    /// Seconds to wait for in-flight requests on SIGTERM/SIGINT before closing them.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,

    /// Log format: plain text or JSON lines (the level comes from `RUST_LOG`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Connection deadlines and limits.
    #[command(flatten)]
    pub connections: ConnectionConfig,

    /// The deadline of database operations.
    #[command(flatten)]
    pub db_deadline: DatabaseDeadline,

    /// Identifier binding, refresh-token rotation, failure limits and admin protection.
    #[command(flatten)]
    pub security: SecurityConfig,

    /// Signing keys shared by the replicas through PostgreSQL, and their rotation.
    #[command(flatten)]
    pub shared_keys: SharedKeyConfig,

    /// How registered keys are hashed, and the shortest key accepted.
    #[command(flatten)]
    pub key_hashing: KeyHashConfig,
}

/// A key file path; unlike clap's path parser it takes an empty value, which means unset (as
/// `RSA_PRIVATE_KEY_PATH=` or a trailing comma in a list does).
fn key_path(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line, for log pipelines.
    Json,
}

mod connections;
mod database;
mod keys;
mod secret;
mod security;

pub use connections::ConnectionConfig;
pub use database::{ConfigError, Database, DatabaseDeadline};
pub use keys::{DEFAULT_MIN_KEY_LENGTH, KeyHashConfig, SharedKeyConfig};
pub use secret::Secret;
pub use security::{MIN_ADMIN_TOKEN_LEN, SecurityConfig};

impl Config {
    /// Whether a signing or verification key is configured (inline or as a file), as opposed
    /// to one the server generates or shares through the database.
    pub fn key_configured(&self) -> bool {
        self.rsa_private_key.is_some()
            || self.rsa_public_key.is_some()
            || self.jwt_private_key.is_some()
            || self.jwt_public_key.is_some()
            || self.rsa_private_key_path.is_some()
            || self.rsa_public_key_path.is_some()
            || self.jwt_private_key_path.is_some()
            || self.jwt_public_key_path.is_some()
    }

    /// `URL_PREFIX` as a path: empty, or starting with `/` and not ending with one.
    pub fn url_prefix(&self) -> Result<String, ConfigError> {
        let trimmed = self.url_prefix.trim().trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(String::new());
        }
        if trimmed.contains(['?', '#', ' ', '*', '{', '}', ':']) {
            return Err(ConfigError::Invalid(format!(
                "URL_PREFIX `{}` must be a plain path such as /auth",
                self.url_prefix
            )));
        }
        Ok(if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("jwthenticator-server").chain(args.iter().copied()))
            .expect("valid arguments")
    }

    fn postgres_url(database: Database) -> (String, bool) {
        match database {
            Database::Postgres {
                url,
                create_if_missing,
            } => (url.expose().to_owned(), create_if_missing),
            other => panic!("expected PostgreSQL, got {other:?}"),
        }
    }

    #[test]
    fn database_url_wins_over_db_uri_and_db_parts() {
        let cfg = config(&[
            "--database-url",
            "sqlite://x.db",
            "--db-uri",
            "postgresql://u@h/d",
            "--db-host",
            "h",
        ]);
        assert!(
            matches!(cfg.database().unwrap(), Database::Sqlite { file: Some(f), .. } if f.as_path() == std::path::Path::new("x.db"))
        );
    }

    #[test]
    fn database_url_for_postgres_is_not_created_if_missing() {
        let cfg = config(&["--database-url", "postgresql://u@h/d"]);
        assert_eq!(
            postgres_url(cfg.database().unwrap()),
            ("postgres://u@h/d".into(), false)
        );
    }

    #[test]
    fn db_uri_with_python_driver_suffix_is_understood_and_wins_over_parts() {
        for (uri, expected) in [
            ("postgresql+pg8000://u:p@h/d", "postgres://u:p@h/d"),
            ("postgresql+asyncpg://u@h:5433/d", "postgres://u@h:5433/d"),
        ] {
            let cfg = config(&["--db-uri", uri, "--db-host", "other"]);
            assert_eq!(
                postgres_url(cfg.database().unwrap()),
                (expected.into(), true)
            );
        }
    }

    #[test]
    fn db_parts_mean_postgres_with_the_original_defaults() {
        let cfg = config(&["--db-host", "db.internal:5433"]);
        assert_eq!(
            postgres_url(cfg.database().unwrap()),
            (
                "postgres://postgres@db.internal:5433/jwthenticator".into(),
                true
            )
        );
        let cfg = config(&[
            "--db-user",
            "a b",
            "--db-pass",
            "p@ss/word",
            "--db-name",
            "auth",
        ]);
        assert_eq!(
            postgres_url(cfg.database().unwrap()).0,
            "postgres://a%20b:p%40ss%2Fword@localhost/auth"
        );
    }

    #[test]
    fn nothing_configured_means_embedded_sqlite_in_the_data_dir() {
        let cfg = config(&["--data-dir", "/tmp/jwt-data"]);
        assert_eq!(
            cfg.database().unwrap(),
            Database::Sqlite {
                url: "sqlite:///tmp/jwt-data/jwthenticator.db".into(),
                file: Some(PathBuf::from("/tmp/jwt-data/jwthenticator.db")),
            }
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let cfg = config(&["--database-url", "", "--db-host", ""]);
        assert!(matches!(cfg.database().unwrap(), Database::Sqlite { .. }));
    }

    #[test]
    fn other_database_schemes_are_refused() {
        let cfg = config(&["--database-url", "mysql://u@h/d"]);
        assert!(matches!(cfg.database(), Err(ConfigError::UnsupportedDatabase(s)) if s == "mysql"));
    }

    #[test]
    fn url_prefix_is_normalised() {
        for (raw, expected) in [
            ("", ""),
            ("/", ""),
            ("auth", "/auth"),
            ("/auth/", "/auth"),
            ("/a/b", "/a/b"),
        ] {
            assert_eq!(
                config(&["--url-prefix", raw]).url_prefix().unwrap(),
                expected,
                "{raw}"
            );
        }
        assert!(config(&["--url-prefix", "/a?b"]).url_prefix().is_err());
    }

    #[test]
    fn boolean_flags_accept_the_original_spellings() {
        for (raw, expected) in [
            ("true", true),
            ("1", true),
            ("yes", true),
            ("false", false),
            ("0", false),
        ] {
            let cfg = config(&["--disable-external-api", raw]);
            assert_eq!(cfg.disable_external_api, expected, "{raw}");
        }
        assert!(config(&["--disable-internal-api"]).disable_internal_api);
    }

    #[test]
    fn unsupported_algorithms_are_refused_at_parse_time() {
        for alg in ["HS256", "none", "rs256"] {
            let result = Config::try_parse_from(["x", "--jwt-algorithm", alg]);
            assert!(result.is_err(), "{alg}");
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let cfg = config(&[
            "--rsa-private-key",
            "-----BEGIN PRIVATE KEY-----SECRETPEM",
            "--db-pass",
            "hunter2",
            "--database-url",
            "postgres://u:hunter3@h/d",
        ]);
        let debug = format!("{cfg:?}");
        for secret in ["SECRETPEM", "hunter2", "hunter3"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }
}
