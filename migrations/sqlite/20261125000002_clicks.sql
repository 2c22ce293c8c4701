-- Click counting (embedded engine): the outbox of click batches, and the counters they are applied to.
--
-- Lookup instances insert one row per flush (at most one a second each) into
-- click_batches; stats-service applies a batch to the counters and deletes its row in
-- one transaction. A batch is therefore counted exactly once: a crash before the
-- commit leaves the row for a retry, a crash after it leaves nothing to retry.

CREATE TABLE click_batches (
    batch_id    TEXT   PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    -- Failed applications so far; past the limit the batch moves to dead_click_batches.
    attempts    INTEGER NOT NULL DEFAULT 0,
    clicks      INTEGER NOT NULL,
    payload     TEXT   NOT NULL
);
CREATE INDEX click_batches_created_idx ON click_batches (created_at);

CREATE TABLE dead_click_batches (
    batch_id    TEXT   PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    failed_at   INTEGER NOT NULL,
    clicks      INTEGER NOT NULL,
    error       TEXT   NOT NULL,
    payload     TEXT   NOT NULL
);

-- Counters live apart from links: a hot link's clicks never contend with its row.
CREATE TABLE click_totals (
    code    TEXT   PRIMARY KEY,
    clicks  INTEGER NOT NULL,
    bots    INTEGER NOT NULL
);

-- Hourly buckets (start of the hour, Unix ms); daily figures are sums of these.
CREATE TABLE click_hours (
    code    TEXT   NOT NULL,
    hour    INTEGER NOT NULL,
    clicks  INTEGER NOT NULL,
    PRIMARY KEY (code, hour)
);

-- Per day and dimension (referrer, browser, os, device, country): clicks per value.
CREATE TABLE click_dimensions (
    code    TEXT   NOT NULL,
    day     INTEGER NOT NULL,
    dim     TEXT   NOT NULL,
    value   TEXT   NOT NULL,
    clicks  INTEGER NOT NULL,
    PRIMARY KEY (code, day, dim, value)
);

-- Unique visitors per day: a keyed hash of (day, address, user agent). The key is
-- per deployment and the day is part of the hash, so a visitor cannot be followed
-- across days and no address is stored.
CREATE TABLE click_visitors (
    code     TEXT   NOT NULL,
    day      INTEGER NOT NULL,
    visitor  INTEGER NOT NULL,
    PRIMARY KEY (code, day, visitor)
);
