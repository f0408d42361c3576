ALTER TABLE bindings
    ALTER COLUMN aor TYPE TEXT COLLATE "default",
    ALTER COLUMN contact TYPE TEXT COLLATE "default";
ALTER TABLE publications ALTER COLUMN etag TYPE TEXT COLLATE "default";
ALTER TABLE subscriptions ALTER COLUMN id TYPE TEXT COLLATE "default";
