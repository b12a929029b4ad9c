-- Events this node's own operator key signed and at least one relay accepted: its newest
-- contact list (kind 3, one row) and its endorsements (1985) and reports (1984). Scores
-- count them at once, before any relay echoes them back, and a follow builds on the
-- contact list kept here when no relay answers. Rows of another key (the operator key was
-- replaced) are deleted with the replacement.
CREATE TABLE operator_events (
    id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    kind INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    event TEXT NOT NULL,
    published_at TEXT NOT NULL
);
CREATE INDEX operator_events_by_author ON operator_events (author, kind, created_at);
