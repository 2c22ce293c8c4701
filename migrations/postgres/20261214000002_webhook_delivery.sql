-- Webhook delivery: where the fan-out of link changes stands, and which worker holds
-- a message while it is being sent.

-- A change is dispatched once the messages it owes endpoints are queued (the relay
-- queues them before it publishes the change to the caches, so webhooks do not wait
-- for Redis). Changes made before webhooks existed have no one to tell.
ALTER TABLE link_changes ADD COLUMN dispatched_at BIGINT;
UPDATE link_changes SET dispatched_at = created_at;

-- Until when a worker holds a message it is sending (Unix ms); past it, another may
-- take it (the holder died, or its attempt outlived every timeout).
ALTER TABLE webhook_messages ADD COLUMN locked_until BIGINT;
-- Where a message's retry budget runs from when it is not its creation: its replay.
ALTER TABLE webhook_messages ADD COLUMN retry_from BIGINT;
