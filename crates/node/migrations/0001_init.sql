-- Trust state: every accepted root rotation and catalog, the clock last seen.
CREATE TABLE root_rotations (
    version INTEGER PRIMARY KEY,
    envelope BLOB NOT NULL,
    accepted_at TEXT NOT NULL
);

CREATE TABLE catalogs (
    version INTEGER PRIMARY KEY,
    envelope BLOB NOT NULL,
    blake3 TEXT NOT NULL,
    expires TEXT NOT NULL,
    accepted_at TEXT NOT NULL
);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Installed apps: what the operator wants (desired) next to the catalog version it came from.
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    catalog_version INTEGER NOT NULL,
    desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
    installed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every operation is written before it acts, so a crash leaves a record to resume or roll back.
CREATE TABLE operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    stage TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT
);

CREATE INDEX operations_running ON operations (status) WHERE status = 'running';

-- Things the operator must see: equivocation, refused updates.
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    raised_at TEXT NOT NULL
);
