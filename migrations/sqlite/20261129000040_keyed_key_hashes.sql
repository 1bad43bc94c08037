-- Keys stored as keyed hashes (see the PostgreSQL migration of the same name): 'sha512' rows
-- were written unkeyed and are upgraded to 'hmac-sha512' on their next use.
ALTER TABLE keys ADD COLUMN key_hash_scheme TEXT NOT NULL DEFAULT 'sha512';

CREATE TABLE IF NOT EXISTS server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
