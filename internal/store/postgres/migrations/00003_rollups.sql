-- +goose Up
-- Rollups: how many rows there are per UTC hour of received time, status and
-- direction (rollup_status), and the same per sender domain and recipient
-- domain too (rollup_domains). Count answers from them whatever the range
-- (the full hours inside it; the partial hours at its ends are counted from
-- rows) whenever a query filters on nothing else than statuses, direction
-- and `*@domain` patterns: a 90-day count reads thousands of rollup rows
-- instead of millions of rows.
--
-- They are kept exact in the transaction that changes rows, by statement
-- triggers on rows (every INSERT, UPDATE and DELETE of any append, whatever
-- statements the append uses, COPY included): each statement's transition
-- tables (the rows before and after it) become one signed delta per rollup
-- key. A row whose status, direction or received time changes moves from one
-- key to another. Dropping partitions fires no trigger: Prune deletes their
-- hours itself. Keys whose count reaches zero stay (n = 0) until Prune.
CREATE TABLE rollup_status (
    hour      bigint NOT NULL,                 -- unix ns of the UTC hour's start
    status    text COLLATE "C" NOT NULL,
    direction text COLLATE "C" NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (hour, status, direction)
);
CREATE TABLE rollup_domains (
    hour             bigint NOT NULL,
    sender_domain    text COLLATE "C" NOT NULL,
    recipient_domain text COLLATE "C" NOT NULL,
    status           text COLLATE "C" NOT NULL,
    direction        text COLLATE "C" NOT NULL,
    n                bigint NOT NULL,
    PRIMARY KEY (hour, sender_domain, recipient_domain, status, direction)
);
CREATE INDEX rollup_domains_sender    ON rollup_domains (sender_domain, hour) INCLUDE (status, direction, n);
CREATE INDEX rollup_domains_recipient ON rollup_domains (recipient_domain, hour) INCLUDE (status, direction, n);

-- +goose StatementBegin
-- mt_rollup_apply adds a delta (signed counts per key, as parallel arrays) to
-- both rollups, in key order (concurrent appends lock keys in the same order
-- within a statement).
CREATE FUNCTION mt_rollup_apply(d_hour bigint[], d_sd text[], d_rd text[], d_st text[], d_dir text[], d_n bigint[])
RETURNS void LANGUAGE sql AS $f$
    INSERT INTO rollup_status AS r (hour, status, direction, n)
    SELECT h, st, dir, sum(n) FROM unnest(d_hour, d_st, d_dir, d_n) AS d(h, st, dir, n)
    GROUP BY h, st, dir HAVING sum(n) <> 0 ORDER BY h, st, dir
    ON CONFLICT (hour, status, direction) DO UPDATE SET n = r.n + excluded.n;
    INSERT INTO rollup_domains AS r (hour, sender_domain, recipient_domain, status, direction, n)
    SELECT h, sd, rd, st, dir, sum(n) FROM unnest(d_hour, d_sd, d_rd, d_st, d_dir, d_n) AS d(h, sd, rd, st, dir, n)
    GROUP BY h, sd, rd, st, dir HAVING sum(n) <> 0 ORDER BY h, sd, rd, st, dir
    ON CONFLICT (hour, sender_domain, recipient_domain, status, direction) DO UPDATE SET n = r.n + excluded.n;
$f$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION mt_rollup_rows() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    hs bigint[]; sds text[]; rds text[]; sts text[]; dirs text[]; ns bigint[];
BEGIN
    -- One signed row per changed key; unchanged rows of an UPDATE cancel out.
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(h), array_agg(sd), array_agg(rd), array_agg(st), array_agg(dir), array_agg(n)
        INTO hs, sds, rds, sts, dirs, ns FROM (
            SELECT received - received % 3600000000000 AS h, sender_domain AS sd, recipient_domain AS rd,
                status AS st, direction AS dir, count(*) AS n
            FROM mt_new GROUP BY 1, 2, 3, 4, 5) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(h), array_agg(sd), array_agg(rd), array_agg(st), array_agg(dir), array_agg(n)
        INTO hs, sds, rds, sts, dirs, ns FROM (
            SELECT received - received % 3600000000000 AS h, sender_domain AS sd, recipient_domain AS rd,
                status AS st, direction AS dir, -count(*) AS n
            FROM mt_old GROUP BY 1, 2, 3, 4, 5) d;
    ELSE
        SELECT array_agg(h), array_agg(sd), array_agg(rd), array_agg(st), array_agg(dir), array_agg(n)
        INTO hs, sds, rds, sts, dirs, ns FROM (
            SELECT h, sd, rd, st, dir, sum(n) AS n FROM (
                SELECT received - received % 3600000000000 AS h, sender_domain AS sd, recipient_domain AS rd,
                    status AS st, direction AS dir, 1 AS n FROM mt_new
                UNION ALL
                SELECT received - received % 3600000000000, sender_domain, recipient_domain,
                    status, direction, -1 FROM mt_old) u
            GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0) d;
    END IF;
    IF hs IS NOT NULL THEN
        PERFORM mt_rollup_apply(hs, sds, rds, sts, dirs, ns);
    END IF;
    RETURN NULL;
END
$f$;
-- +goose StatementEnd

CREATE TRIGGER rows_rollup_insert AFTER INSERT ON rows REFERENCING NEW TABLE AS mt_new
    FOR EACH STATEMENT EXECUTE FUNCTION mt_rollup_rows();
CREATE TRIGGER rows_rollup_update AFTER UPDATE ON rows REFERENCING OLD TABLE AS mt_old NEW TABLE AS mt_new
    FOR EACH STATEMENT EXECUTE FUNCTION mt_rollup_rows();
CREATE TRIGGER rows_rollup_delete AFTER DELETE ON rows REFERENCING OLD TABLE AS mt_old
    FOR EACH STATEMENT EXECUTE FUNCTION mt_rollup_rows();

-- What the store holds already (the triggers above lock out appends until
-- this migration commits, so nothing is counted twice or missed).
INSERT INTO rollup_status (hour, status, direction, n)
SELECT received - received % 3600000000000, status, direction, count(*) FROM rows GROUP BY 1, 2, 3;
INSERT INTO rollup_domains (hour, sender_domain, recipient_domain, status, direction, n)
SELECT received - received % 3600000000000, sender_domain, recipient_domain, status, direction, count(*)
FROM rows GROUP BY 1, 2, 3, 4, 5;

-- +goose Down
DROP TRIGGER rows_rollup_insert ON rows;
DROP TRIGGER rows_rollup_update ON rows;
DROP TRIGGER rows_rollup_delete ON rows;
DROP FUNCTION mt_rollup_rows();
DROP FUNCTION mt_rollup_apply(bigint[], text[], text[], text[], text[], bigint[]);
DROP TABLE rollup_domains;
DROP TABLE rollup_status;
