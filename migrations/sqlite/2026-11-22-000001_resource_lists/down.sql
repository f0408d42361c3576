DROP TABLE resource_list_members;
ALTER TABLE subscriptions DROP COLUMN linphone_compat;
ALTER TABLE subscriptions DROP COLUMN list_members;
ALTER TABLE subscriptions DROP COLUMN list_source;
ALTER TABLE subscriptions DROP COLUMN accept_encoding;
