-- Presence state that must survive a restart: subscriptions (whole dialogs), publications and
-- registrar bindings. Times are Unix seconds.

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY NOT NULL,            -- Call-ID, tags and Event id of the dialog usage
    aor TEXT NOT NULL,                       -- the presentity watched
    call_id TEXT NOT NULL,
    local_tag TEXT NOT NULL,
    remote_tag TEXT NOT NULL,
    event_id TEXT,                           -- Event header id parameter
    accept TEXT,                             -- the SUBSCRIBE's Accept, if any
    local_uri TEXT NOT NULL,                 -- name-addr of our side (NOTIFY From, without tag)
    remote_uri TEXT NOT NULL,                -- name-addr of the watcher (NOTIFY To, without tag)
    remote_target TEXT NOT NULL,             -- Contact URI of the watcher
    route_set TEXT NOT NULL,                 -- Record-Route values, one per line
    remote_cseq BIGINT NOT NULL,             -- last CSeq received in the dialog
    notify_cseq_mark BIGINT NOT NULL,        -- every NOTIFY CSeq ever sent is below this mark
    state TEXT NOT NULL,                     -- active | pending
    document_version BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    transport TEXT NOT NULL,                 -- UDP | TCP, for connection reuse
    local_addr TEXT NOT NULL,
    peer_addr TEXT NOT NULL
);
CREATE INDEX subscriptions_expires_at ON subscriptions (expires_at);

CREATE TABLE publications (
    etag TEXT PRIMARY KEY NOT NULL,
    aor TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    seq BIGINT NOT NULL                      -- order of last modification, newest highest
);
CREATE INDEX publications_expires_at ON publications (expires_at);

CREATE TABLE bindings (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    q_value REAL,
    expires_at BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    cseq BIGINT NOT NULL,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX bindings_expires_at ON bindings (expires_at);
