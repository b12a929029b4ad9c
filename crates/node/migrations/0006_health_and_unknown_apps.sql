-- What the health loop last saw of each running container with a health check: the last
-- result and when, the last failure, how often the node restarted it, and the last ten
-- results (JSON array of {at, ok, detail}).
CREATE TABLE container_health (
    app TEXT NOT NULL,
    container TEXT NOT NULL,
    status TEXT NOT NULL,
    last_checked TEXT,
    last_failure TEXT,
    restarts INTEGER NOT NULL DEFAULT 0,
    history TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (app, container)
);

-- Apps whose labelled containers run in Podman but which sqlite does not know (a lost or
-- empty database): the alarm is raised once per app, while it stays unknown.
CREATE TABLE unknown_apps (
    app TEXT PRIMARY KEY,
    raised_at TEXT NOT NULL
);
