-- Branded domains (embedded engine): the host names tenants serve their links on,
-- each held by one tenant. Same columns as migrations/postgres.
CREATE TABLE domains (
    name        TEXT    NOT NULL,
    tenant_id   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT domains_pkey PRIMARY KEY (name)
) WITHOUT ROWID;

CREATE INDEX domains_tenant ON domains (tenant_id, name);
