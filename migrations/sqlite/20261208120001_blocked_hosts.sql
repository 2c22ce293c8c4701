-- The runtime host blocklist (embedded engine): destinations found to serve phishing
-- or malware after links to them were made, each with its subdomains. Held in memory
-- and reloaded every `links.blocklist_reload_secs`. Same columns as
-- migrations/postgres.
CREATE TABLE blocked_hosts (
    host        TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    CONSTRAINT blocked_hosts_pkey PRIMARY KEY (host)
) WITHOUT ROWID;
