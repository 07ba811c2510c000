-- +goose Up
-- The mailbox folder of a recipient's copy (issue 16: "the summary row
-- gets the final mailbox folder where known"): the folder of the row's
-- latest Save event (Dovecot's LMTP or LDA, a Sieve fileinto), and that
-- event's time, so that a Save arriving late (another source's line, a
-- replay) replaces it only when it happened later (mailflow.Placement).
-- Neither is indexed: a folder is shown, not searched, and a row whose
-- folder changes stays a heap-only update (migration 00004).
ALTER TABLE rows ADD COLUMN folder text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE rows ADD COLUMN folder_time bigint; -- NULL: no Save known

-- The rows stored before: their latest Save, read from their events (the
-- LIKE spares parsing every other event's JSON).
UPDATE rows r SET folder = s.folder, folder_time = s.time
FROM (
    SELECT DISTINCT ON (trace_id, recipient, received) trace_id, recipient, received, time, folder
    FROM (
        SELECT trace_id, recipient, received, time, body::jsonb ->> 'folder' AS folder
        FROM events
        WHERE recipient <> '' AND body LIKE '%"event":"Save"%' AND body::jsonb ->> 'event' = 'Save'
    ) e
    WHERE folder <> ''
    ORDER BY trace_id, recipient, received, time DESC, folder COLLATE "C" DESC -- byte order, as Go compares
) s
WHERE r.trace_id = s.trace_id AND r.recipient = s.recipient AND r.received = s.received;

-- +goose Down
ALTER TABLE rows DROP COLUMN folder_time;
ALTER TABLE rows DROP COLUMN folder;
