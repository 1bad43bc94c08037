//! Where the data lives: `DATABASE_URL`, the original's `DB_URI`/`DB_*`, or the embedded
//! SQLite file in `DATA_DIR`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Config, Secret};

/// A configuration that cannot work, with the variable to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A database URL with a scheme other than sqlite or postgres.
    #[error("unsupported database URL scheme `{0}`: use sqlite:// or postgres://")]
    UnsupportedDatabase(String),
    /// Any other invalid value.
    #[error("{0}")]
    Invalid(String),
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// PostgreSQL at this URL.
    Postgres {
        /// `postgres://` URL.
        url: Secret,
        /// Create the database when it does not exist (the original's behaviour for `DB_*`).
        create_if_missing: bool,
    },
    /// An SQLite database at this URL (`sqlite://file` or `sqlite::memory:`).
    Sqlite {
        /// `sqlite:` URL.
        url: String,
        /// The database file, when it is one (not in memory).
        file: Option<PathBuf>,
    },
}

impl Database {
    /// A file beside the embedded database: its name with `suffix` appended (`None` for
    /// PostgreSQL and an in-memory SQLite database, which have no file).
    pub fn beside(&self, suffix: &str) -> Option<PathBuf> {
        let Self::Sqlite {
            file: Some(file), ..
        } = self
        else {
            return None;
        };
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        Some(PathBuf::from(name))
    }
}

fn non_empty<T: AsRef<str>>(value: &Option<T>) -> Option<&str> {
    value.as_ref().map(AsRef::as_ref).filter(|v| !v.is_empty())
}

/// `postgresql+pg8000://u@h/db` → `postgres://u@h/db`; `None` for other schemes.
fn normalize_postgres_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let base = scheme.split('+').next().unwrap_or(scheme);
    matches!(base, "postgres" | "postgresql").then(|| format!("postgres://{rest}"))
}

fn sqlite_database(url: &str) -> Database {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let file = (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path));
    Database::Sqlite {
        url: url.to_owned(),
        file,
    }
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Config {
    /// Picks the database: `DATABASE_URL`; else the original's `DB_URI`/`DB_*` (PostgreSQL,
    /// created if missing); else an embedded SQLite file in `DATA_DIR`.
    pub fn database(&self) -> Result<Database, ConfigError> {
        if let Some(url) = non_empty(&self.database_url) {
            if url.starts_with("sqlite:") {
                return Ok(sqlite_database(url));
            }
            let url = normalize_postgres_url(url).ok_or_else(|| {
                ConfigError::UnsupportedDatabase(
                    url.split(':').next().unwrap_or_default().to_owned(),
                )
            })?;
            return Ok(Database::Postgres {
                url: Secret(url),
                create_if_missing: false,
            });
        }
        if let Some(uri) = non_empty(&self.db_uri) {
            let url = normalize_postgres_url(uri).ok_or_else(|| {
                ConfigError::UnsupportedDatabase(
                    uri.split(':').next().unwrap_or_default().to_owned(),
                )
            })?;
            return Ok(Database::Postgres {
                url: Secret(url),
                create_if_missing: true,
            });
        }
        let parts = [
            non_empty(&self.db_user),
            non_empty(&self.db_pass),
            non_empty(&self.db_host),
            non_empty(&self.db_name),
        ];
        if parts.iter().any(Option::is_some) {
            let [user, pass, host, name] = parts;
            let user = percent_encode(user.unwrap_or("postgres"));
            let credentials = match pass {
                Some(pass) => format!("{user}:{}", percent_encode(pass)),
                None => user,
            };
            let url = format!(
                "postgres://{credentials}@{}/{}",
                host.unwrap_or("localhost"),
                percent_encode(name.unwrap_or("jwthenticator"))
            );
            return Ok(Database::Postgres {
                url: Secret(url),
                create_if_missing: true,
            });
        }
        let file = self.data_dir.join("jwthenticator.db");
        Ok(Database::Sqlite {
            url: format!("sqlite://{}", file.display()),
            file: Some(file),
        })
    }
}

/// The database deadline.
#[derive(Debug, Clone, Args)]
pub struct DatabaseDeadline {
    /// Seconds a request's database operations may take in all, waiting for connections
    /// included; later the request answers 503 with Retry-After (validation and /jwks need no database and keep
    /// answering).
    #[arg(long, env = "DB_TIMEOUT", default_value_t = 5)]
    pub db_timeout: u64,
}

impl DatabaseDeadline {
    /// The deadline, at least a second.
    pub fn limit(&self) -> Duration {
        Duration::from_secs(self.db_timeout.max(1))
    }
}
