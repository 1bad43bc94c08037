-- Tables named and shaped as the Python original's (keys, refresh_tokens; SHA-512 hex key
-- hashes; naive UTC timestamps), so its clients' keys keep working. Refresh tokens are stored
-- only as SHA-512 hex hashes.
CREATE TABLE IF NOT EXISTS keys (
    id BIGSERIAL PRIMARY KEY,
    created TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    key_hash VARCHAR(256) NOT NULL UNIQUE,
    identifier UUID NOT NULL
);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    id BIGSERIAL PRIMARY KEY,
    created TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    token_hash VARCHAR(128) NOT NULL UNIQUE,
    key_id BIGINT NOT NULL REFERENCES keys (id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS refresh_tokens_key_id_idx ON refresh_tokens (key_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
CREATE INDEX IF NOT EXISTS keys_expires_at_idx ON keys (expires_at);
