package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// EnvScale lists the row counts of BenchmarkScale (comma-separated, such
// as 1000000,10000000); unset, BenchmarkScale skips.
const EnvScale = "MAILTRACE_BENCH_SCALE"

// BenchmarkScale measures issue 19's query shapes (storetest.ScaleCases) and
// the planning time of 90-day queries at each scale of MAILTRACE_BENCH_SCALE,
// on a persistent server (MAILTRACE_TEST_POSTGRES) where each seeded
// database is kept, named after the row count, the seed version and the
// number of migrations (so the code before a schema change gets a database
// of its own), and reused by later runs:
//
//	MAILTRACE_TEST_POSTGRES=postgres://... MAILTRACE_BENCH_SCALE=1000000,10000000 \
//	  go test -run '^$' -bench Scale -benchtime 20x -timeout 6h ./internal/store/postgres/
func BenchmarkScale(b *testing.B) {
	spec := os.Getenv(EnvScale)
	if spec == "" {
		b.Skip(EnvScale + " is not set (row counts such as 1000000,10000000)")
	}
	if !pgtest.External() {
		b.Skip("the scale benchmarks keep their seeded databases on a persistent server: set " + pgtest.EnvServer)
	}
	for _, f := range strings.Split(spec, ",") {
		rows, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || rows <= 0 {
			b.Fatalf("%s: %q is not a row count", EnvScale, f)
		}
		b.Run(fmt.Sprintf("rows=%dM", rows/1_000_000), func(b *testing.B) {
			st, dsn := scaleSeeded(b, rows)
			for _, c := range storetest.ScaleCases() {
				b.Run(c.Name, func(b *testing.B) { storetest.BenchCaseRun(b, st, c) })
			}
			// Planning alone: EXPLAIN (SUMMARY) plans without running.
			d90 := mailflow.Query{Start: storetest.BenchEnd.Add(-90 * 24 * time.Hour), End: storetest.BenchEnd}
			sub := d90
			sub.Subject = "invoice"
			b.Run("plan-90d-trace-one-query", func(b *testing.B) { benchPlan(b, dsn, d90, 500) })
			// What the windowed trace plans first (the newest day), which
			// answers when that day fills the page.
			w1 := d90
			w1.Start = storetest.BenchEnd.Add(-24 * time.Hour)
			b.Run("plan-90d-trace-first-window", func(b *testing.B) { benchPlan(b, dsn, w1, 500) })
			b.Run("plan-90d-scan-count", func(b *testing.B) { benchPlanCount(b, dsn, sub) })
		})
	}
}

var planningRE = regexp.MustCompile(`Planning Time: ([0-9.]+) ms`)

// benchPlan reports the median planning time of q's trace SQL, planned on
// one connection (its catalog caches warm after the first plan, as a pooled
// connection's are).
func benchPlan(b *testing.B, dsn string, q mailflow.Query, limit int) {
	sqlText, args, err := postgres.TraceSQL(q, limit)
	if err != nil {
		b.Fatal(err)
	}
	planLoop(b, dsn, sqlText, args)
}

func benchPlanCount(b *testing.B, dsn string, q mailflow.Query) {
	sqlText, args, err := postgres.TraceSQL(q, 0)
	if err != nil {
		b.Fatal(err)
	}
	_, where, _ := strings.Cut(sqlText, " WHERE ")
	where, _, _ = strings.Cut(where, " ORDER BY ")
	planLoop(b, dsn, `SELECT status, count(*) FROM rows WHERE `+where+` GROUP BY status`, args)
}

func planLoop(b *testing.B, dsn, sqlText string, args []any) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	plan := func() float64 {
		var lines []string
		rs, err := conn.Query(ctx, `EXPLAIN (SUMMARY) `+sqlText, args...)
		if err != nil {
			b.Fatal(err)
		}
		lines, err = pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		m := planningRE.FindStringSubmatch(strings.Join(lines, "\n"))
		if m == nil {
			b.Fatalf("no planning time in %v", lines)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	first := plan()
	var ms []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ms = append(ms, plan())
	}
	b.StopTimer()
	sort.Float64s(ms)
	b.ReportMetric(ms[len(ms)/2], "plan-ms")
	b.ReportMetric(first, "first-plan-ms")
}

// scaleSeeded returns a store holding rows rows of storetest.BenchRows,
// loaded with COPY (rows only: traces and counts read nothing else) into
// the daily partitions, with the rows table's indexes dropped during the
// load and built again after it, then ANALYZEd. The rollups' triggers run
// as for any insert; the addresses table is filled from the rows after the
// load.
func scaleSeeded(b *testing.B, rows int) (*postgres.Store, string) {
	ctx := context.Background()
	migs, _ := filepath.Glob("migrations/*.sql")
	dsn, _ := pgtest.NamedDSN(b, storetest.ScaleSeedName(rows, len(migs)))
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(q string, args ...any) {
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE IF NOT EXISTS bench_seed (rows bigint NOT NULL)`)
	var seeded int64
	_ = conn.QueryRow(ctx, `SELECT coalesce(max(rows), 0) FROM bench_seed`).Scan(&seeded)
	if seeded == int64(rows) {
		return st, dsn
	}
	start := time.Now()
	exec(`SET maintenance_work_mem = '512MB'`)
	first := storetest.BenchEnd.Add(-90*24*time.Hour - time.Millisecond).UnixNano()
	for d := first - first%postgres.Day; d < storetest.BenchEnd.UnixNano(); d += postgres.Day {
		for _, t := range []string{"rows", "events"} {
			exec(fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM (%d) TO (%d)`,
				pgx.Identifier{postgres.PartName(t, d)}.Sanitize(), t, d, d+postgres.Day))
		}
	}
	// The indexes go during the load (one build after it is much faster
	// than maintaining them row by row), except the unique key.
	var defs []string
	rs, err := conn.Query(ctx, `SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = 'rows'::regclass AND NOT x.indisunique`)
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for rs.Next() {
		var n, def string
		if err := rs.Scan(&n, &def); err != nil {
			b.Fatal(err)
		}
		names, defs = append(names, n), append(defs, def)
	}
	if rs.Err() != nil {
		b.Fatal(rs.Err())
	}
	for _, n := range names {
		exec(`DROP INDEX ` + pgx.Identifier{n}.Sanitize())
	}
	cols := []string{"received", "trace_id", "recipient", "recipient_domain", "sender", "sender_domain", "subject", "subject_lc",
		"message_id", "message_id_lc", "size", "direction", "original_client_ip", "original_client_inet", "from_ip", "from_inet",
		"to_ip", "to_inet", "expanded_from", "status", "status_time", "status_rank"}
	const chunk = 200_000
	batch := make([][]any, 0, chunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"rows"}, cols, pgx.CopyFromRows(batch))
		batch = batch[:0]
		return err
	}
	dom := func(a string) string { _, d, _ := strings.Cut(a, "@"); return d }
	err = storetest.BenchRows(rows, func(r *mailflow.Row) error {
		var stTime, rank any
		if n, ok := postgres.StatusRank(r.Status); ok {
			stTime, rank = r.StatusTime.UnixNano(), n
		}
		mid := strings.ToLower(mailflow.NormalizeMessageID(r.MessageID))
		batch = append(batch, []any{r.Received.UnixNano(), r.MessageTraceID, r.Recipient, dom(r.Recipient), r.Sender, dom(r.Sender),
			r.Subject, strings.ToLower(r.Subject), r.MessageID, mid, r.Size, string(r.Direction),
			r.OriginalClientIP, postgres.Inet(r.OriginalClientIP), r.FromIP, postgres.Inet(r.FromIP),
			r.ToIP, postgres.Inet(r.ToIP), "", string(r.Status), stTime, rank})
		if len(batch) == chunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		b.Fatalf("loading the rows: %v", err)
	}
	loaded := time.Since(start)
	for _, def := range defs {
		exec(strings.Replace(def, " ON ONLY ", " ON ", 1)) // the partitioned index, on every partition
	}
	indexed := time.Since(start)
	// The distinct addresses of the rows, which Append would have added
	// (migration 00006), and which mid-string wildcards read.
	exec(`INSERT INTO addresses (address, role) SELECT DISTINCT sender, 's'::"char" FROM rows
		UNION ALL SELECT DISTINCT recipient, 'r'::"char" FROM rows ON CONFLICT DO NOTHING`)
	exec(`VACUUM ANALYZE`)
	exec(`INSERT INTO bench_seed VALUES ($1)`, rows)
	var size string
	_ = conn.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&size)
	fmt.Printf("seeded %d rows: COPY %s, indexes %s, VACUUM ANALYZE %s; database %s\n", rows, loaded.Round(time.Second),
		(indexed - loaded).Round(time.Second), (time.Since(start) - indexed).Round(time.Second), size)
	return st, dsn
}
