-- Links, API keys, idempotency records and Snowflake worker leases.
--
-- Instants are BIGINT Unix milliseconds and tags are JSON text so that one set of
-- statements (sqlx Any) serves PostgreSQL and the embedded SQLite engine alike.

-- Keyed by code, hash-partitioned on it: the unique index and a future shard key
-- (Citus distributes by the same column) agree, and each partition's index stays small.
CREATE TABLE links (
    code            TEXT    NOT NULL,
    id              BIGINT  NOT NULL,
    tenant_id       TEXT    NOT NULL,
    url             TEXT    NOT NULL CHECK (octet_length(url) <= 8192),
    redirect_status BIGINT  NOT NULL DEFAULT 302 CHECK (redirect_status IN (301, 302, 307, 308)),
    tags            TEXT    NOT NULL DEFAULT '[]',
    max_visits      BIGINT  CHECK (max_visits > 0),
    expires_at      BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    disabled_at     BIGINT,
    -- Deleted links keep their row: the code answers 410 and is never handed out again.
    deleted_at      BIGINT,
    CONSTRAINT links_pkey PRIMARY KEY (code)
) PARTITION BY HASH (code);

CREATE TABLE links_p0 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 0);
CREATE TABLE links_p1 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 1);
CREATE TABLE links_p2 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 2);
CREATE TABLE links_p3 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 3);
CREATE TABLE links_p4 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 4);
CREATE TABLE links_p5 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 5);
CREATE TABLE links_p6 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 6);
CREATE TABLE links_p7 PARTITION OF links FOR VALUES WITH (MODULUS 8, REMAINDER 7);

-- The owner's listing walks ids downwards (newest first) from a cursor.
CREATE INDEX links_tenant_id_idx ON links (tenant_id, id DESC);

CREATE TABLE api_keys (
    id          BIGINT PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    -- SHA-256 of the key, hex. The key itself is shown once and never stored.
    key_hash    TEXT   NOT NULL,
    label       TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- A retried create with the same Idempotency-Key gets the first response back.
CREATE TABLE idempotency_keys (
    tenant_id       TEXT   NOT NULL,
    idem_key        TEXT   NOT NULL,
    request_hash    TEXT   NOT NULL,
    response_status BIGINT NOT NULL,
    response_body   TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Two live processes must never share a Snowflake worker id: each holds a lease row
-- that it renews; a lease whose expiry passed may be taken over.
CREATE TABLE worker_leases (
    worker_id   BIGINT PRIMARY KEY CHECK (worker_id >= 0 AND worker_id < 1024),
    holder      TEXT   NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- Upper bound (Unix ms) of the timestamps of ids issued under this worker id so
    -- far. The next holder never issues an id at or below it, so ids stay unique even
    -- when its clock is behind the previous holder's.
    issued_until BIGINT NOT NULL DEFAULT 0
);
