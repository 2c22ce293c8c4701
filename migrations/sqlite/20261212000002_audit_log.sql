-- The audit log (embedded engine); see migrations/postgres for the columns.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    actor_kind  TEXT    NOT NULL CHECK (actor_kind IN ('key', 'anonymous', 'operator')),
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    changes     TEXT    NOT NULL,
    request_id  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);
CREATE INDEX audit_log_target_idx ON audit_log (tenant_id, target, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- Append-only here too (SQLite has no grants): rows never change, and leave only by
-- retention, which cannot reach the last day.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_recent_delete BEFORE DELETE ON audit_log
WHEN OLD.at >= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 86400000
BEGIN
    SELECT RAISE(ABORT, 'audit rows of the last day cannot be deleted');
END;
