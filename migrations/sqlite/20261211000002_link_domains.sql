-- Links belong to a domain (embedded engine); see migrations/postgres for the key.
ALTER TABLE links ADD COLUMN domain TEXT NOT NULL DEFAULT '';

CREATE INDEX links_tenant_domain_id_idx ON links (tenant_id, domain, id DESC);
