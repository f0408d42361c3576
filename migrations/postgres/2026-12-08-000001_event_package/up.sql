-- The event package (RFC 6665 §7.2) each publication and subscription belongs to: every row
-- so far is presence; the event-package layer adds dialog, message-summary, reg and others.

ALTER TABLE publications ADD COLUMN event TEXT NOT NULL DEFAULT 'presence';
ALTER TABLE subscriptions ADD COLUMN event TEXT NOT NULL DEFAULT 'presence';
