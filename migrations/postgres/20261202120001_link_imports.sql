-- The ledger of `shortener links import`: one row per imported source row, written in
-- the same transaction as its link, so a rerun of an interrupted or finished import
-- skips exactly the rows already in.
--
-- A table of its own rather than a column of links: links is partitioned by code,
-- and a unique index there must include the code, so it could not say "this tenant
-- already imported this row". Rows stay when their link is deleted: a rerun must not
-- bring a deleted link back.
CREATE TABLE link_imports (
    tenant_id   TEXT   NOT NULL,
    -- `alias:<alias>` for a row with an alias; for one without, a hash of its
    -- normalised URL, its creation time and how many identical rows came before it
    -- in the file.
    import_key  TEXT   NOT NULL,
    code        TEXT   NOT NULL,
    imported_at BIGINT NOT NULL,
    CONSTRAINT link_imports_pkey PRIMARY KEY (tenant_id, import_key)
);
