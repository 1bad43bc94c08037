-- Same layout as PostgreSQL; timestamps are Unix seconds (UTC).
CREATE TABLE IF NOT EXISTS keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    identifier BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    key_id INTEGER NOT NULL REFERENCES keys (id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS refresh_tokens_key_id_idx ON refresh_tokens (key_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
CREATE INDEX IF NOT EXISTS keys_expires_at_idx ON keys (expires_at);
