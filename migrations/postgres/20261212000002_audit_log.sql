-- The audit log: one row per change to a tenant's links, domains and keys, and to the
-- deployment's blocklist, written in the same transaction as the change it records,
-- so neither exists without the other.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- '' for deployment-wide changes (the blocklist).
    tenant_id   TEXT   NOT NULL,
    -- When the change was made (Unix ms).
    at          BIGINT NOT NULL,
    actor_kind  TEXT   NOT NULL CHECK (actor_kind IN ('key', 'anonymous', 'operator')),
    -- A key's id, a keyed hash of an anonymous caller's address, an operator's name.
    actor       TEXT   NOT NULL,
    -- link.created, domain.updated, key.rotated, ... (domain::audit::AuditAction).
    action      TEXT   NOT NULL,
    -- link:<key>, domain:<name>, key:<id>, host:<host>.
    target      TEXT   NOT NULL,
    -- JSON: {"field": {"from": before, "to": after}}.
    changes     TEXT   NOT NULL,
    request_id  TEXT   NOT NULL DEFAULT ''
);
-- A tenant's log, newest first, whole or for one target.
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);
CREATE INDEX audit_log_target_idx ON audit_log (tenant_id, target, id);
-- Retention. BRIN: rows arrive in time order, so block ranges summarise it in a few
-- pages, and adding a row costs next to nothing (a B-tree here was a fifth index
-- write on every create).
CREATE INDEX audit_log_at_idx ON audit_log USING brin (at);

-- Retention is the only way rows leave, and it cannot reach the last day: the
-- function runs with its owner's rights (the migration's role), so the services'
-- role needs no DELETE on the table.
CREATE FUNCTION audit_log_purge(cutoff BIGINT) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    newest_purgeable BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT - 86400000;
    purged BIGINT;
BEGIN
    DELETE FROM audit_log WHERE at < LEAST(cutoff, newest_purgeable);
    GET DIAGNOSTICS purged = ROW_COUNT;
    RETURN purged;
END;
$$;
REVOKE ALL ON FUNCTION audit_log_purge(BIGINT) FROM PUBLIC;

-- The services' role: the services log in as a member of `shortener_app` (not as the
-- role that owns the tables and runs migrations), which may read and write every
-- table except change the audit log: it may add rows and read them, never update or
-- delete them. Made here when missing (the migration's role then needs CREATEROLE);
-- a deployment can make it beforehand instead.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shortener_app') THEN
        CREATE ROLE shortener_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    -- Another database of the same cluster made it meanwhile.
    NULL;
END;
$$;
GRANT USAGE ON SCHEMA public TO shortener_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO shortener_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO shortener_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO shortener_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO shortener_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM shortener_app, PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_purge(BIGINT) TO shortener_app;
