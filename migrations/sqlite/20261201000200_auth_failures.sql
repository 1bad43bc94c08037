-- Failed attempts per limited key and window, as on PostgreSQL (one process limits in memory on
-- SQLite; the table keeps both layouts the same).
CREATE TABLE IF NOT EXISTS auth_failures (
    counted TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (counted, window_start)
);
CREATE INDEX IF NOT EXISTS auth_failures_expires_at_idx ON auth_failures (expires_at);
