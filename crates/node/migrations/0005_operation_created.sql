-- What an install or update created in Podman and on disk (archy_orchestrator::Created as
-- JSON), written before each object is created, so that recovery after a crash undoes
-- exactly that. NULL when the operation created nothing (yet), or for other kinds.
ALTER TABLE operations ADD COLUMN created TEXT;

-- Listing operations newest first (`GET /v1/operations`).
CREATE INDEX operations_newest ON operations (id DESC);
