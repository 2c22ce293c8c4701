-- The member whose key made a key: their removal, or a demotion below what the key
-- may do, revokes it too, so nobody keeps through a key they made what they lost.
ALTER TABLE api_keys ADD COLUMN created_by_member BIGINT;
CREATE INDEX api_keys_created_by_member_idx ON api_keys (created_by_member)
    WHERE created_by_member IS NOT NULL;
-- A key is rotated once: a second rotation (a retry) is refused, not a second successor.
CREATE UNIQUE INDEX api_keys_rotated_from_key ON api_keys (rotated_from)
    WHERE rotated_from IS NOT NULL;
