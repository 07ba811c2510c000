-- +goose Up
-- An event's key is stored behind its time: 8 bytes of the time (unix ns,
-- big-endian), then a tag byte and the key (0: a 32-digit lower-case hex
-- key, as mailflow.Event.Key derives it, as its 16 bytes; 1: any other
-- key, as it is). The key alone is a hash, so the UNIQUE index on it took
-- its new entries at random places: an append of 1,000 events dirtied
-- ~1,000 of its pages, written to the WAL and checkpointed, 40% of an
-- event-dense ingest's pages. In time order, a batch's entries land on a
-- few pages at the index's end. An event's key is derived from its time
-- (every source's key hashes it), so the same key still means the same
-- event, and Append still stores it once.
-- (|| makes text of blobs: the CAST makes a BLOB of it again, byte for byte.)
UPDATE events SET key = CAST(unhex(printf('%016x', time)) ||
    CASE WHEN length(key) = 32 AND key NOT GLOB '*[^0-9a-f]*' THEN X'00' || unhex(key)
         ELSE X'01' || key END AS BLOB);

-- +goose Down
UPDATE events SET key = CASE WHEN substr(key, 9, 1) = X'00' THEN lower(hex(substr(key, 10)))
    ELSE CAST(substr(key, 10) AS TEXT) END;
