-- How a shared signing key is sealed. 1: AES-256-GCM under an HKDF-SHA-256 of
-- KEY_ENCRYPTION_SECRET, the kid alone as associated data. 2: AES-256-GCM under an Argon2id of
-- KEY_ENCRYPTION_SECRET (parameters and salt in server_settings), every other column of the row
-- as associated data. A replica re-seals version 1 rows as version 2 at start, once it has
-- opened them.
ALTER TABLE signing_keys ADD COLUMN IF NOT EXISTS sealing SMALLINT NOT NULL DEFAULT 1;
