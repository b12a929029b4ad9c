-- A publisher's history as this node saw it. A compliant relay keeps only the newest event
-- per (publisher, app), so versions and "publishing since" must be remembered here.
-- When the node first saw each publisher (unix seconds, the node's clock).
CREATE TABLE market_publishers (
    author TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL
);

-- Every valid publication seen (one row per event), deleted or not.
CREATE TABLE market_history (
    event_id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    app_id TEXT NOT NULL,
    version TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);
CREATE INDEX market_history_by_author ON market_history (author, app_id);

-- NIP-09 deletion requests of publishers, as received (JSON, re-verified whenever used): a
-- relay that missed a withdrawal cannot bring the app back.
CREATE TABLE market_deletions (
    event_id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX market_deletions_by_author ON market_deletions (author);

-- A listing its publisher withdrew stays, marked, so the operator sees what happened: the
-- deletion request's id and time.
ALTER TABLE market_listings ADD COLUMN withdrawn_by TEXT;
ALTER TABLE market_listings ADD COLUMN withdrawn_at INTEGER;
