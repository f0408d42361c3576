-- The keys are opaque tokens (dialog usage ids, entity-tags, AORs and contacts): compare them
-- byte by byte, as SQLite does, instead of by the database's locale. With a locale every
-- comparison in an index descent is a strcoll on copies of both strings; a group commit makes
-- thousands of them. Equality is the same either way (these collations are deterministic).
ALTER TABLE subscriptions ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE publications ALTER COLUMN etag TYPE TEXT COLLATE "C";
ALTER TABLE bindings
    ALTER COLUMN aor TYPE TEXT COLLATE "C",
    ALTER COLUMN contact TYPE TEXT COLLATE "C";
