-- Redirect rules: how a link picks its target beside its URL (query forwarding,
-- rules, split-test variants, a password hash), as one JSON document read whole with
-- the link and carried whole in its cache entry. NULL: the URL alone, the query
-- forwarded, which is what every link made before was.
ALTER TABLE links ADD COLUMN routing TEXT CHECK (length(CAST(routing AS BLOB)) <= 131072);

-- Whether new links on a domain forward the visitor's query string unless they say.
ALTER TABLE domains ADD COLUMN forward_query INTEGER NOT NULL DEFAULT 1
    CHECK (forward_query IN (0, 1));
