-- +goose Up
-- Mid-string address wildcards (`*7@d0*.example`: no usable literal prefix,
-- not a plain `*@domain`) through the distinct addresses instead of the
-- rows. The trigram GIN indexes of migration 00002 on rows(sender) and
-- rows(recipient) gave each row about 40 trigram entries to write as it was
-- appended (23% of the backends' CPU of a dense ingest), while real mail has
-- far fewer distinct addresses than rows (the dense benchmark log: 32,000
-- distinct addresses, 1.2 million trigram entries). So the trigram index is
-- on this table of distinct addresses, and such a pattern becomes
--   sender = ANY(ARRAY(SELECT address FROM addresses WHERE role = 's' AND address LIKE $p))
-- which the rows_sender and rows_recipient btree indexes answer (postgres.go,
-- addressOr). Append inserts the addresses of its batch, new ones only (ON
-- CONFLICT DO NOTHING, in key order so that concurrent appends take their
-- locks in the same order).
--
-- role says on which side of a row the address was seen: 's' sender, 'r'
-- recipient. Every value of rows.sender is here with role 's' and every
-- value of rows.recipient with role 'r' (the empty ones too: `*` matches a
-- placeholder's empty recipient). Addresses may outlive their rows
-- (retention drops rows, not addresses): harmless, such a candidate matches
-- no row.
CREATE TABLE addresses (
    address text COLLATE "C" NOT NULL,
    role    "char" NOT NULL,  -- 's' sender, 'r' recipient
    PRIMARY KEY (address, role)
);

-- What the store holds already (the rows' btree indexes give the distinct
-- values without sorting the table).
INSERT INTO addresses (address, role)
SELECT DISTINCT sender, 's'::"char" FROM rows
UNION ALL
SELECT DISTINCT recipient, 'r'::"char" FROM rows;

-- The trigram index, when pg_trgm can be had. When the extension is not
-- available (or may not be created) the migration still succeeds: such
-- patterns read the whole (small) addresses table, and Open says so (and
-- builds the index at a later Open once the extension exists; it runs this
-- block again, replica.go).
-- +goose StatementBegin
DO $$
DECLARE ns name;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            RAISE NOTICE 'mailtrace: the pg_trgm extension is not installed on this server';
            RETURN;
        END IF;
        BEGIN
            CREATE EXTENSION pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'mailtrace: no privilege to CREATE EXTENSION pg_trgm';
            RETURN;
        END;
    END IF;
    -- the extension's schema may not be on the search path
    SELECT n.nspname INTO ns FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    EXECUTE format('CREATE INDEX IF NOT EXISTS addresses_trgm ON addresses USING gin (address %I.gin_trgm_ops)', ns);
END $$;
-- +goose StatementEnd

DROP INDEX IF EXISTS rows_sender_trgm;
DROP INDEX IF EXISTS rows_recipient_trgm;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE ns name;
BEGIN
    SELECT n.nspname INTO ns FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF ns IS NOT NULL THEN
        EXECUTE format('CREATE INDEX IF NOT EXISTS rows_sender_trgm ON rows USING gin (sender %I.gin_trgm_ops)', ns);
        EXECUTE format('CREATE INDEX IF NOT EXISTS rows_recipient_trgm ON rows USING gin (recipient %I.gin_trgm_ops)', ns);
    END IF;
END $$;
-- +goose StatementEnd
DROP TABLE addresses;
