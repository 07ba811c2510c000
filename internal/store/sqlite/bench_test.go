package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"

	"github.com/mailtrace/mailtrace/internal/store/storetest"
)

// The benchmark database is seeded once and cached under the repository's
// git-ignored bin/bench/, keyed by schema version, seed version and size; a
// ".complete" marker next to it says the seeding finished.

var benchStores sync.Map // path -> *Store

func benchStore(b *testing.B, rows int) *Store {
	b.Helper()
	schema, err := migrationCount()
	if err != nil {
		b.Fatal(err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(root, "bin", "bench", storetest.SQLiteBenchFile(schema, rows))
	if s, ok := benchStores.Load(path); ok {
		return s.(*Store)
	}
	ctx := context.Background()
	marker := path + ".complete"
	if _, err := os.Stat(marker); err != nil {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			_ = os.Remove(p)
		}
		start := time.Now()
		s, err := Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		if err := storetest.SeedBench(ctx, s, rows); err != nil {
			b.Fatal(err)
		}
		if _, err := s.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(marker, []byte(time.Since(start).String()+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d rows into %s in %s", rows, path, time.Since(start).Round(time.Second))
	}
	s, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	benchStores.Store(path, s)
	return s
}

// BenchmarkTrace1M: the first 500 rows of a 10-day, one-sender-domain trace
// over 1,000,000 rows spread over 90 days.
func BenchmarkTrace1M(b *testing.B) { storetest.BenchTrace(b, benchStore(b, 1_000_000)) }

// BenchmarkCount1M: Count of the same trace.
func BenchmarkCount1M(b *testing.B) { storetest.BenchCount(b, benchStore(b, 1_000_000)) }

// BenchmarkMidWild1M: issue 19's mid-string wildcard over the same rows,
// `*7@d0*.example` over 10 days: the first 500 rows and the counts, a walk
// of the range (docs/scaling.md, "The embedded SQLite store", says why no
// trigram index serves it).
func BenchmarkMidWild1M(b *testing.B) {
	st := benchStore(b, 1_000_000)
	for _, c := range storetest.ScaleCases() {
		if strings.HasSuffix(c.Name, "-midwild") {
			b.Run(c.Name, func(b *testing.B) { storetest.BenchCaseRun(b, st, c) })
		}
	}
}
