-- Links belong to a domain. A link on the default domain keeps `code` as it was and
-- `domain` empty, so every existing link keeps its code, short URL and counts. A link
-- on a branded domain is stored under the key `<domain>/<code>` (neither part can hold
-- a `/`): the one column every table already keys links by (clicks, the outbox, the
-- caches) stays the key, an alias is unique per domain, and generated codes, unique
-- by their ids, stay unique across domains.
ALTER TABLE links ADD COLUMN domain TEXT NOT NULL DEFAULT '';

-- The owner's listing of one domain, newest first.
CREATE INDEX links_tenant_domain_id_idx ON links (tenant_id, domain, id DESC);
