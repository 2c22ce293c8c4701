-- The runtime host blocklist (`shortener hosts block|unblock|list`): destinations
-- found to serve phishing or malware after links to them were made. A block covers
-- the host and all its subdomains, like `links.blocked_hosts`, and adds to it.
--
-- Every lookup and create instance holds the whole table in memory: lookup checks
-- the target host of each redirect against it, create refuses new links to it. They
-- reload it on a blocklist-changed event (Redis pub/sub) and every
-- `links.blocklist_reload_secs`, so the table stays small and is read whole.
CREATE TABLE blocked_hosts (
    -- Normalised as the URL rules compare hosts: lowercase, IDN as punycode, IPv6 in
    -- brackets, no port, no trailing dot.
    host        TEXT   NOT NULL,
    -- Why it was blocked, for the operators who read `hosts list`.
    reason      TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    CONSTRAINT blocked_hosts_pkey PRIMARY KEY (host)
);
