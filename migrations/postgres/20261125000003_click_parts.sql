-- A flush is queued as one batch per partition of the code space (by a hash of the
-- code), and a stats-service round takes batches of one partition: two consumers
-- then update disjoint counter rows side by side instead of queueing on each
-- other's row locks.
ALTER TABLE click_batches ADD COLUMN part BIGINT NOT NULL DEFAULT 0;
