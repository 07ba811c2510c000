package ingestbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/store/storetest"
	"github.com/mailtrace/mailtrace/internal/testutil/harness"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// Issue 19: `mailtrace ingest --file` of a 1,000-line file on an existing
// store (goal < 0.2 s). The real binary, on a copy of a large benchmark
// store made for each run, so that every run meets the same store:
//
//   - PostgreSQL: BenchmarkScale's seed of the first row count of
//     MAILTRACE_BENCH_SCALE on the persistent MAILTRACE_TEST_POSTGRES
//     server (BenchmarkScale makes it; storetest.ScaleSeedName), copied
//     with CREATE DATABASE ... TEMPLATE;
//   - SQLite: the adapter's 1M-row benchmark file in bin/bench/ (its
//     BenchmarkTrace1M makes it; storetest.SQLiteBenchFile), copied.
//
// Each run times three ingests in a row, of 1,000-line files of a busy
// relay on the data's newest day: "new", messages the store has not seen;
// "next", the following 1,000 lines (with the first one's --state-file:
// the first file's 250 messages, received and deferred there, are
// delivered, so stored messages are read, locked and updated, and 250
// new ones begin); "again", the first file again without a state file
// (every event is stored already: the lookups alone). Reported: each
// one's wall time in ms, and the CPU time of the ingester and (PostgreSQL)
// of the server's backends that served it.

// existingLines is the size of each timed file.
const existingLines = 1000

// relayLog writes lines [from, to) of a busy relay's log that starts on
// day at 06:00 UTC: messages of 7 lines (client, message-id, from, a
// deferral, two deliveries, removed), 250 in flight at once, a second a
// step, as denseLog's, on another day.
func relayLog(tb testing.TB, path string, day time.Time, from, to int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	t0 := day.Add(6 * time.Hour)
	const inflight, steps = 250, 7
	n := 0
	for base := 0; n < to; base += inflight {
		for s := 0; s < steps && n < to; s++ {
			for i := base; i < base+inflight && n < to; i++ {
				line := n
				n++
				if line < from {
					continue
				}
				q := fmt.Sprintf("%X%06X", 0xB0+i%16, i)
				sec := (base/inflight)*(steps+1) + s
				fmt.Fprintf(w, "%s relay2 postfix/", t0.Add(time.Duration(sec)*time.Second).Format("Jan _2 15:04:05"))
				switch s {
				case 0:
					fmt.Fprintf(w, "smtpd[2001]: %s: client=mail%d.example.net[192.0.2.%d]", q, i%97, 1+i%250)
				case 1:
					fmt.Fprintf(w, "cleanup[2002]: %s: message-id=<%d.relay2@example.net>", q, i)
				case 2:
					fmt.Fprintf(w, "qmgr[2003]: %s: from=<sender%d@example.net>, size=%d, nrcpt=2 (queue active)", q, i%5000, 2000+i%90000)
				case 3:
					fmt.Fprintf(w, "smtp[2004]: %s: to=<user%d@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.4.1, status=deferred (connect to mx.example.org[198.51.100.7]:25: Connection timed out)", q, i%20000)
				case 4:
					fmt.Fprintf(w, "smtp[2004]: %s: to=<other%d@example.com>, relay=mx.example.com[203.0.113.9]:25, delay=1.4, delays=0.1/0/0.5/0.8, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X%d)", q, i%7000, i)
				case 5:
					fmt.Fprintf(w, "smtp[2004]: %s: to=<user%d@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=3.2, delays=2.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as Y%d)", q, i%20000, i)
				case 6:
					fmt.Fprintf(w, "qmgr[2003]: %s: removed", q)
				}
				w.WriteByte('\n')
			}
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// benchExisting runs the three timed ingests on a fresh copy of the store
// (copy returns its URL) for each binary.
func benchExisting(b *testing.B, copyStore func(b *testing.B) string) {
	dir := b.TempDir()
	first, next := filepath.Join(dir, "first.log"), filepath.Join(dir, "next.log")
	day := storetest.BenchEnd.Add(-24 * time.Hour) // the data's newest day
	relayLog(b, first, day, 0, existingLines)
	relayLog(b, next, day, existingLines, 2*existingLines)
	each(b, func(b *testing.B, bin string) {
		for range b.N {
			url := copyStore(b)
			state := filepath.Join(b.TempDir(), "state.json")
			year := []string{"--year", strconv.Itoa(day.Year())}
			for _, c := range []struct {
				name, file string
				extra      []string
			}{
				{"new", first, append([]string{"--state-file", state}, year...)},
				{"next", next, append([]string{"--state-file", state}, year...)},
				{"again", first, year},
			} {
				r := run(b, bin, c.file, url, c.extra...)
				b.ReportMetric(float64(r.wall.Microseconds())/1000, c.name+"-wall-ms")
				b.ReportMetric(float64((r.cpu+r.pgCPU).Microseconds())/1000, c.name+"-cpu-ms")
				b.Logf("%s: %d events, %d messages in %.3f s (ingester CPU %.3f s, server %.3f s); load average %s",
					c.name, r.events, r.messages, r.wall.Seconds(), r.cpu.Seconds(), r.pgCPU.Seconds(), loadAverage())
			}
		}
		b.ReportMetric(0, "ns/op")
	})
}

// BenchmarkIngestExistingPostgres: into a copy of BenchmarkScale's seed.
func BenchmarkIngestExistingPostgres(b *testing.B) {
	spec := os.Getenv("MAILTRACE_BENCH_SCALE")
	if spec == "" || !pgtest.External() {
		b.Skip("needs BenchmarkScale's seed: set MAILTRACE_BENCH_SCALE (its first row count is used) and " + pgtest.EnvServer)
	}
	rows, err := strconv.Atoi(strings.TrimSpace(strings.Split(spec, ",")[0]))
	if err != nil {
		b.Fatalf("MAILTRACE_BENCH_SCALE=%q: %v", spec, err)
	}
	migs, err := filepath.Glob("../../internal/store/postgres/migrations/*.sql")
	if err != nil || len(migs) == 0 {
		b.Fatalf("the PostgreSQL migrations: %v", err)
	}
	seed := storetest.ScaleSeedName(rows, len(migs))
	admin := pgtest.Server(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	var seeded int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, seed).Scan(&seeded); err != nil {
		b.Fatal(err)
	}
	conn.Close(ctx)
	if seeded == 0 {
		b.Skipf("no database %s: seed it first with MAILTRACE_BENCH_SCALE=%d go test -run '^$' -bench 'Scale/rows=%dM/trace-90d-all' ./internal/store/postgres/",
			seed, rows, rows/1_000_000)
	}
	n := 0
	benchExisting(b, func(b *testing.B) string {
		n++
		name := fmt.Sprintf("mt_ingest_existing_%d_%d", os.Getpid(), n)
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		// FILE_COPY: the seed's files as they are (its statistics and
		// visibility map too), without writing them all to the WAL
		if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE `+
			pgx.Identifier{seed}.Sanitize()+` STRATEGY = FILE_COPY`); err != nil {
			b.Fatalf("copy of %s: %v", seed, err)
		}
		// the copy's files on disk before the timed run (with fsync off the
		// server leaves them to the kernel, whose write-back of a 9 GB copy
		// would otherwise run during the ingest)
		syscall.Sync()
		b.Cleanup(func() { // on a connection of its own: conn is closed by then
			c, err := pgx.Connect(ctx, admin)
			if err != nil {
				b.Errorf("drop the copy %s: %v", name, err)
				return
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
				b.Errorf("drop the copy %s: %v", name, err)
			}
		})
		pu, err := url.Parse(admin)
		if err != nil {
			b.Fatal(err)
		}
		pu.Path = "/" + name
		u := pu.String()
		// a first connection to the new database writes its relation
		// cache's init file, which an existing database has
		c2, err := pgx.Connect(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		c2.Close(ctx)
		return u
	})
}

// BenchmarkIngestExistingSQLite: into a copy of the SQLite adapter's 1M
// benchmark file.
func BenchmarkIngestExistingSQLite(b *testing.B) {
	migs, err := filepath.Glob("../../internal/store/sqlite/migrations/*.sql")
	if err != nil || len(migs) == 0 {
		b.Fatalf("the SQLite migrations: %v", err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	seed := filepath.Join(root, "bin", "bench", storetest.SQLiteBenchFile(len(migs), 1_000_000))
	if _, err := os.Stat(seed + ".complete"); err != nil {
		b.Skipf("no %s: seed it first with go test -run '^$' -bench Trace1M -benchtime 1x ./internal/store/sqlite/", seed)
	}
	benchExisting(b, func(b *testing.B) string {
		dst := filepath.Join(b.TempDir(), "existing.db")
		if err := copyFile(seed, dst); err != nil {
			b.Fatal(err)
		}
		return "sqlite://" + dst
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	// on disk before the ingest: otherwise the checkpoint at its close
	// syncs the whole copy, and the run measures the copy's write-back
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
