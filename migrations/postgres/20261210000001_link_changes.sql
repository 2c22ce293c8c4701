-- The transactional outbox of link changes: every insert or update of a link writes
-- one row here in the same transaction, by trigger, so no write path (the API, bulk
-- creates, imports, a future one) can change a link without a change row, and no
-- change lives only in a process's memory. The relay in create-service publishes each
-- row (Redis write-through and invalidation) and marks it published; later readers
-- (webhooks, audit) read the same rows.
CREATE TABLE link_changes (
    seq          BIGSERIAL PRIMARY KEY,
    code         TEXT   NOT NULL,
    -- created | updated | deleted
    kind         TEXT   NOT NULL,
    -- The link's updated_at after the change: the version lookups compare against.
    updated_at   BIGINT NOT NULL,
    -- When the change committed (Unix ms), for the relay's lag and for retention.
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);
-- What the relay reads: the unpublished tail, in order. Small however long the table.
CREATE INDEX link_changes_pending_idx ON link_changes (seq) WHERE published_at IS NULL;
CREATE INDEX link_changes_published_idx ON link_changes (published_at) WHERE published_at IS NOT NULL;

CREATE FUNCTION link_changes_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_changes (code, kind, updated_at, created_at)
    VALUES (
        NEW.code,
        CASE
            WHEN TG_OP = 'INSERT' THEN 'created'
            WHEN NEW.deleted_at IS NOT NULL THEN 'deleted'
            ELSE 'updated'
        END,
        NEW.updated_at,
        (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
    );
    RETURN NULL;
END;
$$;

-- On the partitioned parent: PostgreSQL clones it onto every partition.
CREATE TRIGGER links_record_change
    AFTER INSERT OR UPDATE ON links
    FOR EACH ROW EXECUTE FUNCTION link_changes_record();
