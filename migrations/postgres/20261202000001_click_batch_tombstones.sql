-- A batch's row outlives its application as a tombstone (done_at set, payload
-- emptied) for `stats.dedupe_window_secs`. A lookup instance whose INSERT committed
-- but whose answer was lost sends the batch again; with the row gone that second
-- copy would be applied too. With the tombstone, the INSERT's ON CONFLICT makes it a
-- no-op, whether the first copy is waiting, being applied or already applied.
ALTER TABLE click_batches ADD COLUMN done_at BIGINT;
DROP INDEX click_batches_created_idx;
-- What consumers claim: the waiting batches, oldest first.
CREATE INDEX click_batches_waiting_idx ON click_batches (created_at) WHERE done_at IS NULL;
-- What the purge removes once the window has passed.
CREATE INDEX click_batches_done_idx ON click_batches (done_at) WHERE done_at IS NOT NULL;
