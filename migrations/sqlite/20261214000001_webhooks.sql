-- Webhooks: the endpoints tenants register, the messages owed to them, and a log of
-- every attempt to deliver one. Messages are written in the transaction that decides
-- them (a link change's fan-out, a click batch's application), so an event exists
-- exactly once before anyone tries to send it, and a worker that dies mid-delivery
-- leaves it pending for the next.
CREATE TABLE webhook_endpoints (
    -- `ep_` and 22 random base62 characters.
    id            TEXT   NOT NULL,
    tenant_id     TEXT   NOT NULL,
    url           TEXT   NOT NULL CHECK (length(CAST(url AS BLOB)) <= 2048),
    -- The event types it receives, space-separated (domain::webhooks::EventType).
    events        TEXT   NOT NULL,
    -- `whsec_` and the base64 of 24 random bytes: the HMAC key every message is
    -- signed with, so it is kept as it is (a hash could not sign).
    secret        TEXT   NOT NULL,
    -- A short note of the owner's (what it is for).
    description   TEXT   NOT NULL DEFAULT '' CHECK (length(CAST(description AS BLOB)) <= 512),
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    -- Why it was turned off when the worker did it (failing for days); NULL else.
    disabled_reason TEXT,
    -- The first failed attempt since the last success; NULL while it answers.
    failing_since INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT webhook_endpoints_pkey PRIMARY KEY (id)
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_messages (
    -- Commit order of the writer that decided it: delivery keeps it per link.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- `msg_` and 22 random base62 characters: the `webhook-id` header, the same on
    -- every attempt, the receiver's idempotency key.
    id              TEXT   NOT NULL UNIQUE,
    endpoint_id     TEXT   NOT NULL,
    tenant_id       TEXT   NOT NULL,
    event_type      TEXT   NOT NULL,
    -- The link it is about (its key: code, or domain/code); messages of one link
    -- reach an endpoint in `seq` order. '' for messages about no link (a test event).
    link_key        TEXT   NOT NULL,
    -- The body as it is sent, signed as these bytes.
    payload         TEXT   NOT NULL,
    created_at      INTEGER NOT NULL,
    -- pending: to be sent at next_attempt_at; delivered; dead (out of retries).
    state           TEXT   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- When it was delivered or given up on.
    finished_at     INTEGER
);
-- What the worker reads: due messages, and whether an older one of the same link
-- is still owed to the same endpoint. Both small however long the table.
CREATE INDEX webhook_messages_due_idx ON webhook_messages (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_messages_order_idx ON webhook_messages (endpoint_id, link_key, seq) WHERE state = 'pending';
-- An endpoint's messages, newest first (dead letters, the delivery log).
CREATE INDEX webhook_messages_endpoint_idx ON webhook_messages (endpoint_id, state, seq);
-- Retention of finished messages.
CREATE INDEX webhook_messages_finished_idx ON webhook_messages (finished_at) WHERE finished_at IS NOT NULL;

-- The delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
    message_seq INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    endpoint_id TEXT   NOT NULL,
    at          INTEGER NOT NULL,
    -- The answer's status; NULL when none came (refused, timed out, blocked).
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    -- Why it failed, when no status says it.
    error       TEXT,
    -- The first bytes of the answer's body.
    response    TEXT,
    CONSTRAINT webhook_attempts_pkey PRIMARY KEY (message_seq, attempt)
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, at);
