-- The ledger of `shortener links import` (embedded engine): one row per imported
-- source row, written in the same transaction as its link, so a rerun skips exactly
-- the rows already in. Same columns as migrations/postgres.
CREATE TABLE link_imports (
    tenant_id   TEXT    NOT NULL,
    import_key  TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    imported_at INTEGER NOT NULL,
    CONSTRAINT link_imports_pkey PRIMARY KEY (tenant_id, import_key)
) WITHOUT ROWID;
