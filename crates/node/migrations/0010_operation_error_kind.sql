-- The kind of an operation's failure (archy_api::ErrorKind wire name), so that replaying a
-- finished operation answers with the same kind as the live one did, not "internal".
ALTER TABLE operations ADD COLUMN error_kind TEXT;
