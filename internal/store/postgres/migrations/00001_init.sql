-- +goose Up
-- Times are unix nanoseconds (bigint), as in the SQLite adapter, so values
-- round-trip exactly and the cursor compares like for like. Text columns use
-- the "C" collation: ordering ties by message trace id and recipient is
-- byte order, as in Go, and LIKE 'prefix%' can use a btree index.

-- One row per message (unpartitioned, keyed by message trace id): its
-- received time decides the daily partition its rows and events live in, so a
-- message's data is always in one partition and retention drops whole
-- messages. Message-level attributes are kept here and copied onto its rows.
CREATE TABLE messages (
    trace_id           text COLLATE "C" PRIMARY KEY,
    received_explicit  bigint,           -- earliest Event.Received seen
    first_event        bigint NOT NULL,  -- earliest event time
    received           bigint NOT NULL,  -- coalesce(received_explicit, first_event)
    message_id         text COLLATE "C" NOT NULL DEFAULT '',
    message_id_lc      text COLLATE "C" NOT NULL DEFAULT '',
    sender             text COLLATE "C" NOT NULL DEFAULT '',  -- store.NormalizeAddress
    sender_domain      text COLLATE "C" NOT NULL DEFAULT '',
    subject            text COLLATE "C" NOT NULL DEFAULT '',
    subject_lc         text COLLATE "C" NOT NULL DEFAULT '',  -- strings.ToLower, in Go
    size               bigint NOT NULL DEFAULT 0,
    direction          text COLLATE "C" NOT NULL DEFAULT '',
    original_client_ip text COLLATE "C" NOT NULL DEFAULT '',
    original_client_inet inet,
    from_ip            text COLLATE "C" NOT NULL DEFAULT '',
    from_inet          inet,
    -- the best message-level outcome (an outcome event with no recipient):
    -- the status of the message's placeholder row (recipients have their own).
    o_time             bigint,
    o_rank             int
);
CREATE INDEX messages_received ON messages (received);

-- The event timeline, append-only, partitioned by the message's received
-- time (daily partitions, created on demand by the adapter).
CREATE SEQUENCE events_seq;
CREATE TABLE events (
    received   bigint NOT NULL,
    trace_id   text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    recipient  text COLLATE "C" NOT NULL,  -- store.NormalizeAddress, '' for message-level events
    time       bigint NOT NULL,
    seq        bigint NOT NULL DEFAULT nextval('events_seq'),
    body       text NOT NULL,              -- the event as JSON
    UNIQUE (trace_id, key, received)
) PARTITION BY RANGE (received);
CREATE INDEX events_message ON events (trace_id, recipient, time);

-- One row per (message, recipient): what a trace returns, partitioned by
-- received time (daily). recipient '' is the placeholder row of a message
-- whose recipients are not known yet.
CREATE TABLE rows (
    received           bigint NOT NULL,
    trace_id           text COLLATE "C" NOT NULL,
    recipient          text COLLATE "C" NOT NULL,
    recipient_domain   text COLLATE "C" NOT NULL,
    sender             text COLLATE "C" NOT NULL,
    sender_domain      text COLLATE "C" NOT NULL,
    subject            text COLLATE "C" NOT NULL,
    subject_lc         text COLLATE "C" NOT NULL,
    message_id         text COLLATE "C" NOT NULL,
    message_id_lc      text COLLATE "C" NOT NULL,
    size               bigint NOT NULL,
    direction          text COLLATE "C" NOT NULL,
    original_client_ip text COLLATE "C" NOT NULL,
    original_client_inet inet,
    from_ip            text COLLATE "C" NOT NULL,
    from_inet          inet,
    to_ip              text COLLATE "C" NOT NULL DEFAULT '',
    to_inet            inet,
    expanded_from      text COLLATE "C" NOT NULL DEFAULT '',
    status             text COLLATE "C" NOT NULL,
    status_time        bigint,  -- NULL for GettingStatus
    status_rank        int,
    UNIQUE (trace_id, recipient, received)
) PARTITION BY RANGE (received);
CREATE INDEX rows_received         ON rows (received DESC, trace_id, recipient);
CREATE INDEX rows_sender_domain    ON rows (sender_domain, received DESC, trace_id, recipient);
CREATE INDEX rows_recipient_domain ON rows (recipient_domain, received DESC, trace_id, recipient);
CREATE INDEX rows_sender           ON rows (sender, received DESC);
CREATE INDEX rows_recipient        ON rows (recipient, received DESC);
CREATE INDEX rows_message_id       ON rows (message_id_lc);

-- +goose Down
DROP TABLE rows;
DROP TABLE events;
DROP SEQUENCE events_seq;
DROP TABLE messages;
