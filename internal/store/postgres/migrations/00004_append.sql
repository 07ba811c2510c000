-- +goose Up
-- What an append touches per row (issue 15):
--
-- A recipient's row changes status as its events arrive (GettingStatus,
-- Pending, Delivered): no indexed column changes, so PostgreSQL can write
-- the new version on the same page without a new entry in each of the
-- table's indexes (a heap-only tuple), if the page has room. Partitions are
-- created with fillfactor 80 from now on (postgres.go, rowsStorage); the
-- ones that exist get it here (for the pages they allocate from now on).
-- The messages table is updated the same way.
--
-- Events: the unique (trace_id, key, received) index serves a message's
-- timeline too (Events reads a message's events by its trace ID and sorts
-- them), so events_message, a second index written for every event, goes.
-- +goose StatementBegin
DO $$
DECLARE p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'rows'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 80)', p);
    END LOOP;
END $$;
-- +goose StatementEnd
ALTER TABLE messages SET (fillfactor = 80);
DROP INDEX events_message;

-- +goose Down
CREATE INDEX events_message ON events (trace_id, recipient, time);
ALTER TABLE messages RESET (fillfactor);
-- +goose StatementBegin
DO $$
DECLARE p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'rows'::regclass LOOP
        EXECUTE format('ALTER TABLE %s RESET (fillfactor)', p);
    END LOOP;
END $$;
-- +goose StatementEnd
