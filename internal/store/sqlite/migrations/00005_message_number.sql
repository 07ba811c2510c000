-- +goose Up
-- Each message gets a number in the order it arrived (mid, the messages
-- table's rowid), and the indexes that located a message's events and
-- rows by its trace ID locate them by that number. Trace IDs are hashes
-- (the sources derive them so): every new message put its entries at
-- random places of three b-trees (messages, events_message and rows'
-- UNIQUE (mtid, recipient)), each a leaf page read and written back to
-- the WAL per message; an event-dense ingest of hashed IDs appended at
-- 14k events/s against 25k with IDs in order. Numbered, a batch's new
-- entries land on the last pages of events_message and rows' unique
-- index; only messages' UNIQUE (mtid) stays random, and it is the one
-- lookup by trace ID left (a trace by ID, an append of a known message).
CREATE TABLE messages_numbered (
    mid                INTEGER PRIMARY KEY,
    mtid               TEXT    NOT NULL UNIQUE,
    received_explicit  INTEGER,
    first_event        INTEGER NOT NULL,
    received           INTEGER NOT NULL,
    sender             TEXT    NOT NULL DEFAULT '',
    subject            TEXT    NOT NULL DEFAULT '',
    message_id         TEXT    NOT NULL DEFAULT '',
    size               INTEGER NOT NULL DEFAULT 0,
    direction          TEXT    NOT NULL DEFAULT '',
    original_client_ip TEXT    NOT NULL DEFAULT '',
    from_ip            TEXT    NOT NULL DEFAULT ''
);
INSERT INTO messages_numbered (mtid, received_explicit, first_event, received, sender, subject,
    message_id, size, direction, original_client_ip, from_ip)
SELECT mtid, received_explicit, first_event, received, sender, subject,
    message_id, size, direction, original_client_ip, from_ip
FROM messages ORDER BY first_event, mtid;
DROP TABLE messages;
ALTER TABLE messages_numbered RENAME TO messages;
CREATE INDEX messages_received ON messages (received);

-- The events keep their trace ID (read by hand with the sqlite3 shell);
-- the index reads the number.
ALTER TABLE events ADD COLUMN mid INTEGER NOT NULL DEFAULT 0;
UPDATE events SET mid = m.mid FROM messages AS m WHERE m.mtid = events.mtid;
DROP INDEX events_message;
CREATE INDEX events_message ON events (mid, recipient, time);

-- rows' UNIQUE (mtid, recipient) is part of its table: the table is
-- rebuilt (SQLite's ALTER TABLE cannot change a constraint), its ids kept.
CREATE TABLE rows_numbered (
    id                 INTEGER PRIMARY KEY,
    mid                INTEGER NOT NULL,
    mtid               TEXT    NOT NULL,
    recipient          TEXT    NOT NULL,
    recipient_domain   TEXT    NOT NULL,
    received           INTEGER NOT NULL,
    sender             TEXT    NOT NULL,
    sender_domain      TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    subject_lc         TEXT    NOT NULL,
    message_id         TEXT    NOT NULL,
    message_id_lc      TEXT    NOT NULL,
    size               INTEGER NOT NULL,
    direction          TEXT    NOT NULL,
    original_client_ip TEXT    NOT NULL,
    original_client_ipb BLOB,
    from_ip            TEXT    NOT NULL,
    from_ipb           BLOB,
    to_ip              TEXT    NOT NULL,
    to_ipb             BLOB,
    expanded_from      TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    status_time        INTEGER NOT NULL,
    folder             TEXT    NOT NULL DEFAULT '',
    folder_time        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (mid, recipient)
);
INSERT INTO rows_numbered (id, mid, mtid, recipient, recipient_domain, received, sender, sender_domain,
    subject, subject_lc, message_id, message_id_lc, size, direction, original_client_ip, original_client_ipb,
    from_ip, from_ipb, to_ip, to_ipb, expanded_from, status, status_time, folder, folder_time)
SELECT r.id, m.mid, r.mtid, r.recipient, r.recipient_domain, r.received, r.sender, r.sender_domain,
    r.subject, r.subject_lc, r.message_id, r.message_id_lc, r.size, r.direction, r.original_client_ip, r.original_client_ipb,
    r.from_ip, r.from_ipb, r.to_ip, r.to_ipb, r.expanded_from, r.status, r.status_time, r.folder, r.folder_time
FROM rows AS r JOIN messages AS m ON m.mtid = r.mtid;
DROP TABLE rows;
ALTER TABLE rows_numbered RENAME TO rows;
CREATE INDEX rows_received         ON rows (received DESC, mtid, recipient, status);
CREATE INDEX rows_sender_domain    ON rows (sender_domain, received DESC, mtid, recipient, status);
CREATE INDEX rows_recipient_domain ON rows (recipient_domain, received DESC, mtid, recipient, status);
CREATE INDEX rows_status           ON rows (status, received DESC, mtid, recipient);
CREATE INDEX rows_sender           ON rows (sender, received DESC);
CREATE INDEX rows_recipient        ON rows (recipient, received DESC);
CREATE INDEX rows_message_id       ON rows (message_id_lc);

-- +goose Down
CREATE TABLE rows_keyed (
    id                 INTEGER PRIMARY KEY,
    mtid               TEXT    NOT NULL,
    recipient          TEXT    NOT NULL,
    recipient_domain   TEXT    NOT NULL,
    received           INTEGER NOT NULL,
    sender             TEXT    NOT NULL,
    sender_domain      TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    subject_lc         TEXT    NOT NULL,
    message_id         TEXT    NOT NULL,
    message_id_lc      TEXT    NOT NULL,
    size               INTEGER NOT NULL,
    direction          TEXT    NOT NULL,
    original_client_ip TEXT    NOT NULL,
    original_client_ipb BLOB,
    from_ip            TEXT    NOT NULL,
    from_ipb           BLOB,
    to_ip              TEXT    NOT NULL,
    to_ipb             BLOB,
    expanded_from      TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    status_time        INTEGER NOT NULL,
    folder             TEXT    NOT NULL DEFAULT '',
    folder_time        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (mtid, recipient)
);
INSERT INTO rows_keyed (id, mtid, recipient, recipient_domain, received, sender, sender_domain,
    subject, subject_lc, message_id, message_id_lc, size, direction, original_client_ip, original_client_ipb,
    from_ip, from_ipb, to_ip, to_ipb, expanded_from, status, status_time, folder, folder_time)
SELECT id, mtid, recipient, recipient_domain, received, sender, sender_domain,
    subject, subject_lc, message_id, message_id_lc, size, direction, original_client_ip, original_client_ipb,
    from_ip, from_ipb, to_ip, to_ipb, expanded_from, status, status_time, folder, folder_time
FROM rows;
DROP TABLE rows;
ALTER TABLE rows_keyed RENAME TO rows;
CREATE INDEX rows_received         ON rows (received DESC, mtid, recipient, status);
CREATE INDEX rows_sender_domain    ON rows (sender_domain, received DESC, mtid, recipient, status);
CREATE INDEX rows_recipient_domain ON rows (recipient_domain, received DESC, mtid, recipient, status);
CREATE INDEX rows_status           ON rows (status, received DESC, mtid, recipient);
CREATE INDEX rows_sender           ON rows (sender, received DESC);
CREATE INDEX rows_recipient        ON rows (recipient, received DESC);
CREATE INDEX rows_message_id       ON rows (message_id_lc);

DROP INDEX events_message;
ALTER TABLE events DROP COLUMN mid;
CREATE INDEX events_message ON events (mtid, recipient, time);

CREATE TABLE messages_keyed (
    mtid               TEXT    PRIMARY KEY,
    received_explicit  INTEGER,
    first_event        INTEGER NOT NULL,
    received           INTEGER NOT NULL,
    sender             TEXT    NOT NULL DEFAULT '',
    subject            TEXT    NOT NULL DEFAULT '',
    message_id         TEXT    NOT NULL DEFAULT '',
    size               INTEGER NOT NULL DEFAULT 0,
    direction          TEXT    NOT NULL DEFAULT '',
    original_client_ip TEXT    NOT NULL DEFAULT '',
    from_ip            TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
INSERT INTO messages_keyed (mtid, received_explicit, first_event, received, sender, subject,
    message_id, size, direction, original_client_ip, from_ip)
SELECT mtid, received_explicit, first_event, received, sender, subject,
    message_id, size, direction, original_client_ip, from_ip
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_keyed RENAME TO messages;
CREATE INDEX messages_received ON messages (received);
