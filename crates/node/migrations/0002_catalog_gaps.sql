-- How many versions a node skipped when it accepted a catalog (it was offline meanwhile).
ALTER TABLE catalogs ADD COLUMN missed INTEGER NOT NULL DEFAULT 0;
