ALTER TABLE subscriptions DROP COLUMN mark_epoch;
DROP TABLE store_epoch;
