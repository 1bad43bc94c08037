//! Fresh PostgreSQL databases, the Python original's server, and a catalog snapshot of our tables.

use std::path::Path;
use std::time::Duration;

use jwthenticator_test_support::ChildProcess;
use jwthenticator_tests::{PgDatabase, free_port};
use sqlx::PgConnection;
use tokio::process::Command;

use crate::python;

/// Environment variables the original reads that must not leak in from the caller.
const ORIGINAL_VARIABLES: &[&str] = &[
    "PORT",
    "URL_PREFIX",
    "DISABLE_EXTERNAL_API",
    "DISABLE_INTERNAL_API",
    "JWT_ALGORITHM",
    "JWT_ALGORITHM_FAMILY",
    "JWT_LEASE_TIME",
    "JWT_AUDIENCE",
    "KEY_EXPIRY",
    "REFRESH_TOKEN_EXPIRY",
    "RSA_PUBLIC_KEY",
    "RSA_PRIVATE_KEY",
    "RSA_PUBLIC_KEY_PATH",
    "RSA_PRIVATE_KEY_PATH",
    "RSA_KEY_SIZE",
    "DB_CONNECTOR",
    "ASYNC_DB_CONNECTOR",
    "DB_USER",
    "DB_PASS",
    "DB_HOST",
    "DB_NAME",
    "DB_URI",
    "ASYNC_URI",
];

/// The Python original's server (its own aiohttp app) on a loopback port, killed on drop.
#[derive(Debug)]
pub(crate) struct OriginalServer {
    base_url: String,
    process: ChildProcess,
}

impl OriginalServer {
    /// Starts the original on `database`, with extra environment `env`, and waits for `/health`.
    pub(crate) async fn start(database: &PgDatabase, log_dir: &Path, env: &[(&str, &str)]) -> Self {
        let python = python::interpreter().await;
        let port = free_port();
        let mut command = Command::new(python);
        for name in ORIGINAL_VARIABLES {
            command.env_remove(name);
        }
        command
            .arg(python::script("original_server.py"))
            .arg(port.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // The original's defaults, as its deployments configure them.
            .env("DB_URI", database.url("postgresql+pg8000"))
            .env("ASYNC_URI", database.url("postgresql+asyncpg"))
            .envs(env.iter().copied())
            .current_dir(log_dir);
        let log = log_dir.join(format!("original-{port}.log"));
        let mut server = Self {
            base_url: format!("http://127.0.0.1:{port}"),
            process: ChildProcess::spawn("the original", command, log),
        };
        let health = server.url("/health");
        server
            .process
            .wait_until_healthy(&health, Duration::from_secs(60))
            .await;
        server
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub(crate) fn logs(&self) -> String {
        self.process.logs()
    }

    /// Stops the original (SIGTERM, then SIGKILL) and waits until it has exited.
    pub(crate) async fn stop(mut self) {
        self.process.terminate(Duration::from_secs(20)).await;
    }
}

/// Columns, indexes, constraints and sequences of `keys` and `refresh_tokens`, one line each,
/// sorted: two databases with equal snapshots have the same schema (column order aside).
pub(crate) async fn schema_snapshot(db: &mut PgConnection) -> Vec<String> {
    let queries = [
        "SELECT format('column %s.%s %s(%s) nullable=%s default=%s', table_name, column_name,
                data_type, coalesce(character_maximum_length, 0), is_nullable,
                coalesce(column_default, ''))
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name IN ('keys', 'refresh_tokens')",
        "SELECT format('index %s %s', indexname, indexdef) FROM pg_indexes
         WHERE schemaname = current_schema() AND tablename IN ('keys', 'refresh_tokens')",
        "SELECT format('constraint %s %s %s', conrelid::regclass, conname,
                pg_get_constraintdef(oid))
         FROM pg_constraint
         WHERE conrelid IN ('keys'::regclass, 'refresh_tokens'::regclass)",
        "SELECT format('sequence %s %s %s', sequencename, data_type, max_value)
         FROM pg_sequences WHERE schemaname = current_schema()",
    ];
    let mut lines = Vec::new();
    for query in queries {
        let rows: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut *db)
            .await
            .expect("read the catalog");
        lines.extend(rows);
    }
    lines.sort();
    lines
}
