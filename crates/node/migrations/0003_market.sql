-- Third-party publications discovered through Nostr relays: the newest verified one per
-- (publisher, app). The envelope is kept so it can be re-verified at any time.
CREATE TABLE market_listings (
    author TEXT NOT NULL,
    app_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    did TEXT NOT NULL,
    envelope BLOB NOT NULL,
    discovered_at TEXT NOT NULL,
    PRIMARY KEY (author, app_id)
);
