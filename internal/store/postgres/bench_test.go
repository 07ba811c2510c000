package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

const benchRows = 1_000_000

var (
	benchOnce  sync.Once
	benchStore *postgres.Store
	benchErr   error
)

// benchSeeded returns a store holding storetest.SeedBench's 1M rows. On a
// persistent MAILTRACE_TEST_POSTGRES server the seeded database is kept
// (named after the seed version) and reused by later runs; on the throwaway
// server it is seeded once per test process.
func benchSeeded(b *testing.B) *postgres.Store {
	benchOnce.Do(func() {
		ctx := context.Background()
		var dsn string
		if pgtest.External() {
			dsn, _ = pgtest.NamedDSN(b, fmt.Sprintf("mailtrace_bench_%d_v%d", benchRows, storetest.BenchSeedVersion))
		} else {
			dsn = pgtest.DSN(b)
		}
		st, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			benchErr = err
			return
		}
		benchStore = st
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			benchErr = err
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_seed (rows bigint NOT NULL)`); err != nil {
			benchErr = err
			return
		}
		var seeded int64
		_ = conn.QueryRow(ctx, `SELECT coalesce(max(rows), 0) FROM bench_seed`).Scan(&seeded)
		if seeded == benchRows {
			b.Logf("reusing the seeded benchmark database")
			return
		}
		start := time.Now()
		if err := storetest.SeedBench(ctx, st, benchRows); err != nil {
			benchErr = err
			return
		}
		seed := time.Since(start)
		if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
			benchErr = err
			return
		}
		if _, err := conn.Exec(ctx, `INSERT INTO bench_seed VALUES ($1)`, benchRows); err != nil {
			benchErr = err
			return
		}
		fmt.Printf("seeded %d rows in %s (+ ANALYZE %s)\n", benchRows, seed.Round(time.Millisecond), (time.Since(start) - seed).Round(time.Millisecond))
	})
	if benchErr != nil {
		b.Fatalf("seeding the benchmark store: %v", benchErr)
	}
	if benchStore == nil {
		b.Skip("no benchmark store")
	}
	return benchStore
}

// BenchmarkTrace1M is the first 500 rows of a 10-day `*@d07.example` trace
// over 1M rows.
func BenchmarkTrace1M(b *testing.B) { storetest.BenchTrace(b, benchSeeded(b)) }

// BenchmarkCount1M counts the same trace's rows per status.
func BenchmarkCount1M(b *testing.B) { storetest.BenchCount(b, benchSeeded(b)) }
