-- Failed authenticate/refresh attempts counted for the whole fleet: one row per limited key
-- (an address, or an identifier from an address) and fixed window (Unix seconds, aligned to the
-- window length, so every replica counts in the same windows). Only failures write.
CREATE TABLE IF NOT EXISTS auth_failures (
    counted TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    failures INTEGER NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (counted, window_start)
);
CREATE INDEX IF NOT EXISTS auth_failures_expires_at_idx ON auth_failures (expires_at);
