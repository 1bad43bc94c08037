-- Signing keys shared by every replica (used when no key is configured and
-- KEY_ENCRYPTION_SECRET is set). private_key is the PKCS#8 PEM sealed with AES-256-GCM under a
-- key derived from KEY_ENCRYPTION_SECRET (nonce || ciphertext || tag, the kid as associated
-- data). A key is published from its creation, signs from activates_at to retires_at, and is
-- published until expires_at (retires_at plus the longest token lifetime).
CREATE TABLE IF NOT EXISTS signing_keys (
    id BIGSERIAL PRIMARY KEY,
    kid TEXT NOT NULL UNIQUE,
    algorithm TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    activates_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    retires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL
);
