-- Third-party installs: the publisher's Nostr key (hex) and the DID-signed publication the
-- app was installed from, re-verified whenever the app is used. NULL for first-party apps.
ALTER TABLE apps ADD COLUMN publisher TEXT;
ALTER TABLE apps ADD COLUMN publication BLOB;

-- Each publisher's trust score (0..100) as of the last discovery, with its explanation (JSON).
CREATE TABLE market_scores (
    author TEXT PRIMARY KEY,
    score INTEGER NOT NULL,
    explanation TEXT NOT NULL,
    computed_at TEXT NOT NULL
);

-- Nostr keys the operator trusts, added with `archy market trust add` (beside the config's
-- `trusted_keys`): the roots of the web of trust that scores publishers.
CREATE TABLE trusted_keys (
    key TEXT PRIMARY KEY,
    added_at TEXT NOT NULL
);
