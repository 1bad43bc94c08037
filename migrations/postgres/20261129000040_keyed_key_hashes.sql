-- Keys are stored as keyed hashes: HMAC-SHA-512 hex under KEY_HASH_SECRET, a secret the database
-- does not hold. key_hash_scheme says how a row's key_hash was made: 'sha512', the original's
-- unkeyed SHA-512 hex (the default, so every existing row and every row the original writes gets
-- it), or 'hmac-sha512'. A 'sha512' row is rewritten to 'hmac-sha512' the next time its key is
-- used. Both are 128 hex digits, so the original's key_hash column holds either.
ALTER TABLE keys ADD COLUMN IF NOT EXISTS key_hash_scheme TEXT NOT NULL DEFAULT 'sha512';

-- Values every replica must agree on, each written once by the first replica that needs it: a
-- check value of the key-hash secret, the Argon2id parameters and salt of KEY_ENCRYPTION_SECRET.
CREATE TABLE IF NOT EXISTS server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
