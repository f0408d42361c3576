ALTER TABLE bindings DROP COLUMN params;
