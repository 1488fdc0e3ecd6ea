-- Replication lag, downsampled: the maximum per replica per minute (7 days kept). The last
-- 15 minutes at 1 s resolution live in memory.
CREATE TABLE lag_minutes (
    at_ms      INTEGER NOT NULL,   -- start of the minute, unix ms
    replica    TEXT    NOT NULL,
    lag_bytes  INTEGER NOT NULL,
    lag_secs   REAL    NOT NULL,
    PRIMARY KEY (at_ms, replica)
);
