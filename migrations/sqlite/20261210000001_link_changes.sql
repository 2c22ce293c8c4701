-- The transactional outbox of link changes (see the PostgreSQL migration of the same
-- name): one row per insert or update of a link, written by trigger in the same
-- transaction, published by the relay and then marked.
CREATE TABLE link_changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    code         TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    updated_at   BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    published_at BIGINT
);
CREATE INDEX link_changes_pending_idx ON link_changes (seq) WHERE published_at IS NULL;
CREATE INDEX link_changes_published_idx ON link_changes (published_at) WHERE published_at IS NOT NULL;

CREATE TRIGGER links_record_insert AFTER INSERT ON links
BEGIN
    INSERT INTO link_changes (code, kind, updated_at, created_at)
    VALUES (NEW.code, 'created', NEW.updated_at,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER links_record_update AFTER UPDATE ON links
BEGIN
    INSERT INTO link_changes (code, kind, updated_at, created_at)
    VALUES (NEW.code,
            CASE WHEN NEW.deleted_at IS NOT NULL THEN 'deleted' ELSE 'updated' END,
            NEW.updated_at,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
