-- Revocation of keys and refresh tokens, and refresh-token rotation with reuse detection.
ALTER TABLE keys ADD COLUMN IF NOT EXISTS revoked_at TIMESTAMP WITHOUT TIME ZONE;
CREATE INDEX IF NOT EXISTS keys_identifier_idx ON keys (identifier);

-- family_id groups a refresh token with the tokens it was rotated into (NULL for tokens issued
-- before this migration: each is its own family). retired_at is set when a token is rotated,
-- replaced_by names its successor; presenting a retired token after the grace window revokes
-- the family.
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS revoked_at TIMESTAMP WITHOUT TIME ZONE;
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS retired_at TIMESTAMP WITHOUT TIME ZONE;
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS replaced_by BIGINT;
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS family_id UUID;
CREATE INDEX IF NOT EXISTS refresh_tokens_family_id_idx ON refresh_tokens (family_id);
