-- User administration from the UI: a user can be disabled (sign-in refused, sessions
-- ended) without deleting them, so the audit log keeps naming a user that exists.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
