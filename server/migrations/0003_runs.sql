-- Finished verification and demo runs, kept for history and diffs against the previous run.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,            -- 'verify' | 'demo'
    started_at  TEXT    NOT NULL,            -- RFC 3339, UTC
    finished_at TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    status      TEXT    NOT NULL,            -- 'passed' | 'failed' | 'cancelled'
    summary     TEXT    NOT NULL,            -- one line
    result      TEXT    NOT NULL             -- the full result as JSON
);
CREATE INDEX runs_kind_id ON runs(kind, id);
