-- +goose Up
-- The event timeline: append-only, one row per event key (idempotency).
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL UNIQUE,
    mtid       TEXT    NOT NULL,
    recipient  TEXT    NOT NULL, -- store.NormalizeAddress, '' for message-level events
    time       INTEGER NOT NULL, -- unix nanoseconds, UTC
    body       TEXT    NOT NULL  -- the event as JSON
);
CREATE INDEX events_message ON events (mtid, recipient, time);

-- One row per message: what is known about it so far, whichever event said it.
CREATE TABLE messages (
    mtid               TEXT    PRIMARY KEY,
    received_explicit  INTEGER, -- earliest Event.Received seen, unix ns
    first_event        INTEGER NOT NULL, -- earliest event time, unix ns
    received           INTEGER NOT NULL, -- coalesce(received_explicit, first_event)
    sender             TEXT    NOT NULL DEFAULT '',
    subject            TEXT    NOT NULL DEFAULT '',
    message_id         TEXT    NOT NULL DEFAULT '',
    size               INTEGER NOT NULL DEFAULT 0,
    direction          TEXT    NOT NULL DEFAULT '',
    original_client_ip TEXT    NOT NULL DEFAULT '',
    from_ip            TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX messages_received ON messages (received);

-- One row per (message, recipient): what a trace returns. Message attributes
-- are copied in (and kept in step by Append) so a trace reads one table.
CREATE TABLE rows (
    id                 INTEGER PRIMARY KEY,
    mtid               TEXT    NOT NULL,
    recipient          TEXT    NOT NULL, -- store.NormalizeAddress (lower-cased); '' = placeholder
    recipient_domain   TEXT    NOT NULL, -- after the last '@', lower-cased
    received           INTEGER NOT NULL, -- unix ns
    sender             TEXT    NOT NULL, -- store.NormalizeAddress (lower-cased)
    sender_domain      TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    subject_lc         TEXT    NOT NULL, -- strings.ToLower(subject), computed in Go
    message_id         TEXT    NOT NULL,
    message_id_lc      TEXT    NOT NULL, -- lower(NormalizeMessageID(message_id))
    size               INTEGER NOT NULL,
    direction          TEXT    NOT NULL,
    original_client_ip TEXT    NOT NULL,
    original_client_ipb BLOB,            -- family byte + address bytes, for prefix ranges
    from_ip            TEXT    NOT NULL,
    from_ipb           BLOB,
    to_ip              TEXT    NOT NULL,
    to_ipb             BLOB,
    expanded_from      TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    status_time        INTEGER NOT NULL, -- unix ns, 0 for GettingStatus
    UNIQUE (mtid, recipient)
);
CREATE INDEX rows_received        ON rows (received DESC, mtid, recipient);
CREATE INDEX rows_sender_domain   ON rows (sender_domain, received DESC, mtid, recipient);
CREATE INDEX rows_recipient_domain ON rows (recipient_domain, received DESC, mtid, recipient);
CREATE INDEX rows_sender          ON rows (sender, received DESC);
CREATE INDEX rows_recipient       ON rows (recipient, received DESC);
CREATE INDEX rows_message_id      ON rows (message_id_lc);

-- +goose Down
DROP TABLE rows;
DROP TABLE messages;
DROP TABLE events;
