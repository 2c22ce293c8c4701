-- Branded domains (embedded engine): the host names tenants serve their links on,
-- each held by one tenant. Same columns as migrations/postgres.
CREATE TABLE domains (
    name            TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    root_url        TEXT    CHECK (length(CAST(root_url AS BLOB)) <= 8192),
    not_found_url   TEXT    CHECK (length(CAST(not_found_url AS BLOB)) <= 8192),
    gone_url        TEXT    CHECK (length(CAST(gone_url AS BLOB)) <= 8192),
    scheme          TEXT    NOT NULL DEFAULT 'https' CHECK (scheme IN ('https', 'http')),
    https_only      INTEGER NOT NULL DEFAULT 0 CHECK (https_only IN (0, 1)),
    redirect_status INTEGER NOT NULL DEFAULT 302 CHECK (redirect_status IN (301, 302, 307, 308)),
    retired_at      INTEGER,
    CONSTRAINT domains_pkey PRIMARY KEY (name)
) WITHOUT ROWID;

CREATE INDEX domains_tenant ON domains (tenant_id, name);
