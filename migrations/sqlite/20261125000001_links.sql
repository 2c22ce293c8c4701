-- Links, API keys, idempotency records and Snowflake worker leases (embedded engine).
--
-- Same columns and types as migrations/postgres, without partitioning.

CREATE TABLE links (
    code            TEXT    NOT NULL,
    id              INTEGER NOT NULL,
    tenant_id       TEXT    NOT NULL,
    url             TEXT    NOT NULL CHECK (length(CAST(url AS BLOB)) <= 8192),
    redirect_status INTEGER NOT NULL DEFAULT 302 CHECK (redirect_status IN (301, 302, 307, 308)),
    tags            TEXT    NOT NULL DEFAULT '[]',
    max_visits      INTEGER CHECK (max_visits > 0),
    expires_at      INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    disabled_at     INTEGER,
    deleted_at      INTEGER,
    CONSTRAINT links_pkey PRIMARY KEY (code)
) WITHOUT ROWID;

CREATE INDEX links_tenant_id_idx ON links (tenant_id, id DESC);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL,
    label       TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE idempotency_keys (
    tenant_id       TEXT    NOT NULL,
    idem_key        TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    response_status INTEGER NOT NULL,
    response_body   TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE worker_leases (
    worker_id   INTEGER PRIMARY KEY CHECK (worker_id >= 0 AND worker_id < 1024),
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- Upper bound (Unix ms) of the timestamps of ids issued under this worker id so
    -- far. The next holder never issues an id at or below it, so ids stay unique even
    -- when its clock is behind the previous holder's.
    issued_until INTEGER NOT NULL DEFAULT 0
);
