-- See migrations/postgres: who made a key, and one successor per rotated key.
ALTER TABLE api_keys ADD COLUMN created_by_member BIGINT;
CREATE INDEX api_keys_created_by_member_idx ON api_keys (created_by_member)
    WHERE created_by_member IS NOT NULL;
CREATE UNIQUE INDEX api_keys_rotated_from_key ON api_keys (rotated_from)
    WHERE rotated_from IS NOT NULL;

-- Exactly one of a role, scopes or a member (PostgreSQL has it as a CHECK).
CREATE TRIGGER api_keys_one_grant_insert BEFORE INSERT ON api_keys
WHEN (NEW.role IS NOT NULL) + (NEW.scopes IS NOT NULL) + (NEW.member_id IS NOT NULL) <> 1
BEGIN
    SELECT RAISE(ABORT, 'a key has exactly one of role, scopes and member_id');
END;
CREATE TRIGGER api_keys_one_grant_update BEFORE UPDATE ON api_keys
WHEN (NEW.role IS NOT NULL) + (NEW.scopes IS NOT NULL) + (NEW.member_id IS NOT NULL) <> 1
BEGIN
    SELECT RAISE(ABORT, 'a key has exactly one of role, scopes and member_id');
END;
