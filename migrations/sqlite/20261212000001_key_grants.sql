-- What a key may do: a member's role (owner, admin, editor, viewer), or for a service
-- key its scopes, space-separated (`links:read stats:read`); exactly one is set.
-- Keys made before roles existed could do everything their tenant could: they are
-- owners' keys.
ALTER TABLE api_keys ADD COLUMN role TEXT;
ALTER TABLE api_keys ADD COLUMN scopes TEXT;
-- When the key stops working (Unix ms); NULL: never. Rotation sets it on the key it
-- replaces, to the end of the grace period.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
-- The key this one was rotated from (for the key list and the audit log).
ALTER TABLE api_keys ADD COLUMN rotated_from BIGINT;
UPDATE api_keys SET role = 'owner';
