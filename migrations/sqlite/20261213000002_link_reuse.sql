-- `reuse: true` on create finds the caller's live link for the same URL.
CREATE INDEX links_tenant_url_idx ON links (tenant_id, url);
