ALTER TABLE subscriptions DROP COLUMN event;
ALTER TABLE publications DROP COLUMN event;
