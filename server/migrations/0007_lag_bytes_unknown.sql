-- A replica's byte lag cannot be known while the primary's position is not (the primary
-- down): such a minute stores NULL, not a made-up 0. SQLite cannot drop NOT NULL in place,
-- so the table is copied (every row kept).
CREATE TABLE lag_minutes_new (
    at_ms      INTEGER NOT NULL,   -- start of the minute, unix ms
    replica    TEXT    NOT NULL,
    lag_bytes  INTEGER,            -- NULL: not known in that minute
    lag_secs   REAL    NOT NULL,
    PRIMARY KEY (at_ms, replica)
);
INSERT INTO lag_minutes_new (at_ms, replica, lag_bytes, lag_secs) SELECT at_ms, replica, lag_bytes, lag_secs FROM lag_minutes;
DROP TABLE lag_minutes;
ALTER TABLE lag_minutes_new RENAME TO lag_minutes;
