-- Resource lists (RFC 4662): list subscriptions are subscriptions with their list stored beside
-- the dialog, and the default table behind server-known lists (`rls.list_query`).

ALTER TABLE subscriptions ADD COLUMN accept_encoding TEXT;      -- the SUBSCRIBE's Accept-Encoding
ALTER TABLE subscriptions ADD COLUMN list_source TEXT;          -- NULL (plain) | request | server
ALTER TABLE subscriptions ADD COLUMN list_members TEXT;         -- one "uri<TAB>display name" per line
ALTER TABLE subscriptions ADD COLUMN linphone_compat BOOLEAN NOT NULL DEFAULT FALSE;

-- Server-known lists: the members of list `list_uri` as seen by `owner` (a subscriber's AOR,
-- or '*' for everyone). `position` orders the list.
CREATE TABLE resource_list_members (
    list_uri TEXT NOT NULL,
    owner TEXT NOT NULL,
    member_uri TEXT NOT NULL,
    display_name TEXT,
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (list_uri, owner, member_uri)
);
