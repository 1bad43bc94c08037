-- Revocation of keys and refresh tokens, and refresh-token rotation with reuse detection
-- (see the PostgreSQL migration of the same name).
ALTER TABLE keys ADD COLUMN revoked_at INTEGER;
CREATE INDEX IF NOT EXISTS keys_identifier_idx ON keys (identifier);

ALTER TABLE refresh_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN retired_at INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN replaced_by INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN family_id BLOB;
CREATE INDEX IF NOT EXISTS refresh_tokens_family_id_idx ON refresh_tokens (family_id);
