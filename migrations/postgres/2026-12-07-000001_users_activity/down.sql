DROP TABLE presentity_activity;
ALTER TABLE bindings DROP COLUMN linphone_specs;
