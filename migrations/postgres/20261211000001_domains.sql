-- Branded domains: the host names tenants serve their links on (`go.acme.com`), each
-- held by one tenant. The default domain (`http.public_base_url`) is configuration,
-- not a row: it serves every tenant.
CREATE TABLE domains (
    -- One spelling: lowercase, IDN as punycode, no port, no trailing dot (the
    -- spelling a request's Host is brought to before it is looked up).
    name            TEXT   NOT NULL,
    tenant_id       TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    -- Where `https://<name>/` redirects; NULL: the 404 problem.
    root_url        TEXT   CHECK (octet_length(root_url) <= 8192),
    -- Where a code nobody holds on this domain redirects; NULL: the 404 problem.
    not_found_url   TEXT   CHECK (octet_length(not_found_url) <= 8192),
    -- Where an expired, disabled or deleted link redirects; NULL: the 410 problem.
    gone_url        TEXT   CHECK (octet_length(gone_url) <= 8192),
    -- The scheme of the domain's short URLs.
    scheme          TEXT   NOT NULL DEFAULT 'https' CHECK (scheme IN ('https', 'http')),
    -- 1: plain-http requests are sent to https, and answers carry HSTS.
    https_only      BIGINT NOT NULL DEFAULT 0 CHECK (https_only IN (0, 1)),
    -- The status of new links on this domain that name none.
    redirect_status BIGINT NOT NULL DEFAULT 302 CHECK (redirect_status IN (301, 302, 307, 308)),
    -- Set when the domain was removed with its links: the host still answers (410
    -- for those links), and the name stays with its tenant, so nobody else can take
    -- over the addresses of links that once worked.
    retired_at      BIGINT,
    CONSTRAINT domains_pkey PRIMARY KEY (name)
);

-- A tenant's domains, listed by name.
CREATE INDEX domains_tenant ON domains (tenant_id, name);
