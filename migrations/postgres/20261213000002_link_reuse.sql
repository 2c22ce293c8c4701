-- `reuse: true` on create finds the caller's live link for the same URL: a hash index
-- (four bytes of hash per row, whatever the URL's length) answers equality on `url`,
-- and the tenant and domain are checked on the few rows it returns.
CREATE INDEX links_url_hash_idx ON links USING hash (url);
