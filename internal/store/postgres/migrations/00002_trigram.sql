-- +goose Up
-- Mid-string address wildcards (`*7@d0*.example`: no literal prefix, not a
-- plain `*@domain`) on an index: trigram GIN indexes on the addresses, from
-- the pg_trgm extension (postgresql-contrib; a trusted extension, so the
-- database's owner may create it). LIKE '%7@d0%.example' then finds its
-- candidate rows through the trigrams '7@d', '@d0', '.ex', ... instead of
-- reading every row of the range. The planner picks it over walking the
-- received-time index when it expects fewer rows from it.
--
-- When the extension is not available (or may not be created) the migration
-- still succeeds: such patterns scan their time range, as before, and Open
-- says so (and builds the indexes at a later Open once the extension exists).
-- On a large existing store this builds the indexes under the migration's
-- lock, blocking appends meanwhile: docs/scaling.md says how to build them
-- beforehand, one partition at a time, CONCURRENTLY.
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
    EXECUTE format('CREATE INDEX IF NOT EXISTS rows_sender_trgm ON rows USING gin (sender %I.gin_trgm_ops)', ns);
    EXECUTE format('CREATE INDEX IF NOT EXISTS rows_recipient_trgm ON rows USING gin (recipient %I.gin_trgm_ops)', ns);
END $$;
-- +goose StatementEnd

-- +goose Down
DROP INDEX IF EXISTS rows_sender_trgm;
DROP INDEX IF EXISTS rows_recipient_trgm;
