-- Takes over a database written by the Python original (jwthenticator 1.6.x, SQLAlchemy models):
-- the same tables `keys` and `refresh_tokens`, but
--   * refresh tokens in plain text (`refresh_tokens.token VARCHAR(512)`),
--   * INTEGER ids and `key_id` (SERIAL sequences),
--   * every column but `keys.identifier` nullable,
--   * a foreign key without ON DELETE CASCADE.
-- The first migration's CREATE TABLE IF NOT EXISTS leaves such tables as they are (and adds the
-- expiry indexes); this one upgrades them in place to the layout that migration creates, keeping
-- every usable key and refresh token working. Each step checks the catalog first, so on a
-- database that our own first migration created this migration changes nothing.
DO $$
DECLARE
    utc_now TIMESTAMP WITHOUT TIME ZONE := now() AT TIME ZONE 'UTC';
    fk RECORD;
BEGIN
    -- Refresh tokens: plain text -> SHA-512 hex of the UTF-8 token, the hash the server looks up
    -- (`hash_secret`). Rows the original could never refresh with are dropped: no token, no key,
    -- or no expiry (its schema refused to load them), and tokens stored twice (it required
    -- exactly one match).
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'refresh_tokens'
          AND column_name = 'token'
    ) THEN
        DELETE FROM refresh_tokens
        WHERE token IS NULL OR key_id IS NULL OR expires_at IS NULL
           OR token IN (
               SELECT token FROM refresh_tokens GROUP BY token HAVING count(*) > 1
           );
        ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS token_hash VARCHAR(128);
        UPDATE refresh_tokens SET token_hash = encode(sha512(convert_to(token, 'UTF8')), 'hex');
        ALTER TABLE refresh_tokens DROP COLUMN token;
    END IF;

    -- The foreign key goes while its columns change type; it comes back with ON DELETE CASCADE.
    FOR fk IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'refresh_tokens'::regclass AND contype = 'f'
          AND confrelid = 'keys'::regclass AND confdeltype <> 'c'
    LOOP
        EXECUTE format('ALTER TABLE refresh_tokens DROP CONSTRAINT %I', fk.conname);
    END LOOP;

    -- INTEGER ids -> BIGINT, sequences included.
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'keys' AND column_name = 'id')
       <> 'bigint' THEN
        ALTER TABLE keys ALTER COLUMN id TYPE BIGINT;
        IF pg_get_serial_sequence('keys', 'id') IS NOT NULL THEN
            EXECUTE format('ALTER SEQUENCE %s AS BIGINT', pg_get_serial_sequence('keys', 'id'));
        END IF;
    END IF;
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'refresh_tokens'
          AND column_name = 'id')
       <> 'bigint' THEN
        ALTER TABLE refresh_tokens ALTER COLUMN id TYPE BIGINT;
        IF pg_get_serial_sequence('refresh_tokens', 'id') IS NOT NULL THEN
            EXECUTE format('ALTER SEQUENCE %s AS BIGINT',
                           pg_get_serial_sequence('refresh_tokens', 'id'));
        END IF;
    END IF;
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'refresh_tokens'
          AND column_name = 'key_id')
       <> 'bigint' THEN
        ALTER TABLE refresh_tokens ALTER COLUMN key_id TYPE BIGINT;
    END IF;

    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'refresh_tokens'::regclass AND contype = 'f'
          AND confrelid = 'keys'::regclass
    ) THEN
        ALTER TABLE refresh_tokens ADD CONSTRAINT refresh_tokens_key_id_fkey
            FOREIGN KEY (key_id) REFERENCES keys (id) ON DELETE CASCADE;
    END IF;

    -- NOT NULL wherever the first migration has it, after filling what the original left empty.
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND is_nullable = 'YES'
          AND (table_name, column_name) IN (
              ('keys', 'created'), ('keys', 'expires_at'), ('keys', 'key_hash'),
              ('keys', 'identifier'), ('refresh_tokens', 'created'),
              ('refresh_tokens', 'expires_at'), ('refresh_tokens', 'token_hash'),
              ('refresh_tokens', 'key_id'))
    ) THEN
        -- Keys without an expiry never authenticated with the original (its schema refused to
        -- load them): they stay unusable, as expired keys. A key without a hash cannot match
        -- any key; it keeps its row (refresh tokens may refer to it) under a value that no
        -- SHA-512 hex digest equals. The original wrote one fixed `created` per process start;
        -- a missing one becomes now.
        UPDATE keys SET expires_at = utc_now WHERE expires_at IS NULL;
        UPDATE keys SET key_hash = 'unusable:' || id WHERE key_hash IS NULL;
        UPDATE keys SET created = utc_now WHERE created IS NULL;
        UPDATE refresh_tokens SET created = utc_now WHERE created IS NULL;
        ALTER TABLE keys
            ALTER COLUMN created SET NOT NULL,
            ALTER COLUMN expires_at SET NOT NULL,
            ALTER COLUMN key_hash SET NOT NULL,
            ALTER COLUMN identifier SET NOT NULL;
        ALTER TABLE refresh_tokens
            ALTER COLUMN created SET NOT NULL,
            ALTER COLUMN expires_at SET NOT NULL,
            ALTER COLUMN token_hash SET NOT NULL,
            ALTER COLUMN key_id SET NOT NULL;
    END IF;

    -- Refresh tokens are looked up by hash through a unique index, as on a fresh database.
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'refresh_tokens'::regclass AND contype = 'u'
          AND conname = 'refresh_tokens_token_hash_key'
    ) THEN
        ALTER TABLE refresh_tokens
            ADD CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash);
    END IF;
END
$$;
