-- Branded domains: the host names tenants serve their links on (`go.acme.com`), each
-- held by one tenant. The default domain (`http.public_base_url`) is configuration,
-- not a row: it serves every tenant.
CREATE TABLE domains (
    -- One spelling: lowercase, IDN as punycode, no port, no trailing dot (the
    -- spelling a request's Host is brought to before it is looked up).
    name        TEXT   NOT NULL,
    tenant_id   TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT domains_pkey PRIMARY KEY (name)
);

-- A tenant's domains, listed by name.
CREATE INDEX domains_tenant ON domains (tenant_id, name);
