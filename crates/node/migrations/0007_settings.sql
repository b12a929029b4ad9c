-- Settings the operator changed through the API (`PUT /v1/settings`): they override the
-- config file's values, at start and at once. One row per setting, its value as JSON.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
