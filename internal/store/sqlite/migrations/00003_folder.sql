-- +goose Up
-- The mailbox folder of a recipient's copy (issue 16: "the summary row
-- gets the final mailbox folder where known"): the folder of the row's
-- latest Save event (Dovecot's LMTP or LDA, a Sieve fileinto), and that
-- event's time (unix ns, 0: no Save known), so that a Save arriving late
-- replaces it only when it happened later (mailflow.Placement). Not
-- indexed: a folder is shown, not searched.
ALTER TABLE rows ADD COLUMN folder      TEXT    NOT NULL DEFAULT '';
ALTER TABLE rows ADD COLUMN folder_time INTEGER NOT NULL DEFAULT 0;

-- The rows stored before: their latest Save, read from their events (the
-- instr spares parsing every other event's JSON; of the events of the
-- latest time, the greatest folder, as mailflow.Placement orders them).
-- An event's body is its JSON as a BLOB: read as text.
UPDATE rows SET folder = s.folder, folder_time = s.time
FROM (
    SELECT mtid, recipient, time, folder,
        row_number() OVER (PARTITION BY mtid, recipient ORDER BY time DESC, folder DESC) AS n
    FROM (
        SELECT mtid, recipient, time, json_extract(CAST(body AS TEXT), '$.folder') AS folder
        FROM events
        WHERE recipient <> '' AND instr(CAST(body AS TEXT), '"event":"Save"') > 0
            AND json_extract(CAST(body AS TEXT), '$.event') = 'Save'
    )
    WHERE coalesce(folder, '') <> ''
) AS s
WHERE s.n = 1 AND rows.mtid = s.mtid AND rows.recipient = s.recipient;

-- +goose Down
ALTER TABLE rows DROP COLUMN folder_time;
ALTER TABLE rows DROP COLUMN folder;
