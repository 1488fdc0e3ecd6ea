-- Faults injected by drills, written before they are applied: a control plane that dies
-- mid-drill finds the rows with no undone_at at its next start and undoes them.
CREATE TABLE drill_faults (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    drill       TEXT NOT NULL,
    service     TEXT NOT NULL,
    fault       TEXT NOT NULL,            -- 'kill' | 'stop'
    applied_at  TEXT NOT NULL,            -- RFC 3339, UTC
    undone_at   TEXT,
    undo_result TEXT
);
