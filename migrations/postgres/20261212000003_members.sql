-- The people of a tenant, each with a role. A member's keys act with the member's
-- role of the moment: changing the role changes what all their keys may do.
CREATE TABLE members (
    id          BIGINT NOT NULL PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    -- Lowercase; one member per address in a tenant.
    email       TEXT   NOT NULL,
    name        TEXT   NOT NULL DEFAULT '',
    role        TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT members_tenant_email_key UNIQUE (tenant_id, email)
);

-- A member's key: neither role nor scopes of its own.
ALTER TABLE api_keys ADD COLUMN member_id BIGINT;
CREATE INDEX api_keys_member_idx ON api_keys (member_id);

-- The member whose key made a change, on rows written with a member's key.
ALTER TABLE audit_log ADD COLUMN actor_member BIGINT;
-- Partial: rows of service keys, anonymous callers and the command line skip it.
CREATE INDEX audit_log_member_idx ON audit_log (tenant_id, actor_member, id)
    WHERE actor_member IS NOT NULL;

-- Exactly one of a role, scopes or a member.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_one_grant;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_one_grant CHECK (num_nonnulls(role, scopes, member_id) = 1);
