-- The product's own state. Append-only audit log: every mutating action, who/what/result.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT    NOT NULL,            -- RFC 3339, UTC
    actor     TEXT    NOT NULL,            -- user name, or 'system' / 'cli'
    action    TEXT    NOT NULL,            -- e.g. 'server.start', 'service.restart'
    target    TEXT    NOT NULL DEFAULT '',
    result    TEXT    NOT NULL,            -- 'ok' or the error shown to the user
    detail    TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log(at);

-- Append-only is enforced by the database, not only by the code.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
