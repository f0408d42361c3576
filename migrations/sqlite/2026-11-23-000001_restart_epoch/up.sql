-- NOTIFY CSeq marks survive restarts without rewriting every subscription at start-up.
-- `store_epoch` counts the starts of the store; a subscription's mark was written in the
-- start `mark_epoch`. A start moves every mark up by CSEQ_MARK_STEP for each start since the
-- row was written, in memory, so loading 100,000 subscriptions writes one row, not 100,000.

CREATE TABLE store_epoch (
    id INTEGER PRIMARY KEY NOT NULL,   -- always 1
    epoch BIGINT NOT NULL              -- starts of the store so far
);
INSERT INTO store_epoch (id, epoch) VALUES (1, 0);

ALTER TABLE subscriptions ADD COLUMN mark_epoch BIGINT NOT NULL DEFAULT 0;
