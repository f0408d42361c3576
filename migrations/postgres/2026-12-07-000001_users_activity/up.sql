-- Long-term presence (users database): the capabilities a registered contact advertises
-- (`+org.linphone.specs`), and when each presentity was last active (a publication removed,
-- expired or refreshed, a registration), shown to watchers once the user is offline.

ALTER TABLE bindings ADD COLUMN linphone_specs TEXT;   -- the contact's +org.linphone.specs, as sent

CREATE TABLE presentity_activity (
    aor TEXT PRIMARY KEY NOT NULL,
    last_active BIGINT NOT NULL                         -- Unix seconds
);
