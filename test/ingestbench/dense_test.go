// Package ingestbench measures `mailtrace ingest --file`, the real binary as
// a user runs it, on generated event-dense Postfix logs: wall time, events
// per second, the process's peak RSS and CPU time (from wait4's rusage)
// and, into PostgreSQL, the CPU time of the server's backends that served
// it (from /proc, so the figures can be read on a loaded machine).
// Benchmarks only (`make bench`); nothing here asserts a time.
//
// MAILTRACE_BENCH_BEFORE names another build of the binary (say, of an
// earlier commit in a `git worktree`): each benchmark then runs it and the
// tree's own, as sub-benchmarks "before" and "after", alternating
// MAILTRACE_BENCH_ROUNDS times (default 1), so that both see the same load
// (-count would run all of one before the other).
package ingestbench

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/denselog"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath)) // the binary built for this run
	}
	pgtest.Shutdown()
	os.Exit(code)
}

// denseLog writes a Postfix log of n messages, inflight of them interleaved
// at any time, each of 7 lines and 4 events (received, a deferral and two
// deliveries), the way a busy relay logs: every line but the cleanup's
// carries an event or a fact of one. finish false leaves every message
// in the queue (no delivery, no removal): 3 lines each, none of which ends
// the message.
func denseLog(tb testing.TB, path string, n, inflight int, finish bool) int {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	lines, err := denselog.Write(zw, n, inflight, finish)
	if err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return lines
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds ./cmd/mailtrace once per test binary run.
func binary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailtrace-ingestbench-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "mailtrace")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/mailtrace").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

var statsLine = regexp.MustCompile(`lines (\d+) \(used \d+, ignored \d+\), events (\d+), messages (\d+)`)

// result is what one run of the binary shows.
type result struct {
	events, messages int64
	maxRSS           int64 // bytes
	wall             time.Duration
	cpu              time.Duration // the process's, user and system
	pgCPU            time.Duration // the PostgreSQL backends' that served it (0: SQLite, or not measurable)
}

// run ingests file into storeURL with the binary bin and returns what it
// reports, its peak RSS and its CPU time, and for a PostgreSQL store the
// CPU time of the backends that served it.
func run(tb testing.TB, bin, file, storeURL string, extra ...string) result {
	tb.Helper()
	args := append([]string{"ingest", "--file", file, "--store", storeURL, "--accepted-domain", "example.com", "--retention", "0"}, extra...) // the generated logs are of March 2026
	cmd := exec.CommandContext(context.Background(), bin, args...)
	var pg *backendCPU
	if strings.HasPrefix(storeURL, "postgres") {
		pg = watchBackends(tb, storeURL)
	}
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	var r result
	r.wall = time.Since(t0)
	if pg != nil {
		r.pgCPU = pg.stop()
	}
	if err != nil {
		tb.Fatalf("mailtrace %v: %v\n%s", args, err, out)
	}
	m := statsLine.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("no stats line in:\n%s", out)
	}
	r.events, _ = strconv.ParseInt(string(m[2]), 10, 64)
	r.messages, _ = strconv.ParseInt(string(m[3]), 10, 64)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.maxRSS = ru.Maxrss * 1024
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return r
}

func report(b *testing.B, lines int, r result) {
	b.ReportMetric(float64(r.events)/r.wall.Seconds(), "events/s")
	b.ReportMetric(float64(lines)/r.wall.Seconds(), "lines/s")
	b.ReportMetric(float64(r.maxRSS)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(r.cpu.Seconds(), "ingest-cpu-s")
	if r.pgCPU > 0 {
		b.ReportMetric(r.pgCPU.Seconds(), "pg-cpu-s")
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("%d events, %d messages in %.1f s; load average %s", r.events, r.messages, r.wall.Seconds(), loadAverage())
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// backendCPU follows the CPU time of the PostgreSQL backends connected to
// a database, by their pids in pg_stat_activity and /proc/<pid>/stat (a
// server on this machine; otherwise it measures nothing).
type backendCPU struct {
	done chan struct{}
	res  chan time.Duration
}

func watchBackends(tb testing.TB, dsn string) *backendCPU {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	w := &backendCPU{done: make(chan struct{}), res: make(chan time.Duration, 1)}
	go func() {
		defer conn.Close(ctx)
		last := map[int]time.Duration{}
		poll := func() {
			rs, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
			if err != nil {
				return
			}
			pids, _ := pgx.CollectRows(rs, pgx.RowTo[int32])
			for _, pid := range pids {
				if t, ok := procCPU(int(pid)); ok {
					last[int(pid)] = t
				}
			}
		}
		for {
			poll()
			select {
			case <-w.done:
				var sum time.Duration
				for _, t := range last {
					sum += t
				}
				w.res <- sum
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// stop returns the CPU time of the backends seen (as last seen: the final
// tenth of a second of a backend that exited is missed).
func (w *backendCPU) stop() time.Duration {
	close(w.done)
	return <-w.res
}

// procCPU is utime + stime of a process on this machine.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may hold spaces
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15 of stat(5)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / clockTicks, true
}

// clockTicks is sysconf(_SC_CLK_TCK), 100 on Linux.
const clockTicks = 100

// binaries are the builds each benchmark runs: the tree's, and with
// MAILTRACE_BENCH_BEFORE, the one it names before it.
func binaries(b *testing.B) []struct{ name, path string } {
	after := binary(b)
	before := os.Getenv("MAILTRACE_BENCH_BEFORE")
	if before == "" {
		return []struct{ name, path string }{{"", after}}
	}
	return []struct{ name, path string }{{"before", before}, {"after", after}}
}

// each runs f for each binary, as a sub-benchmark when there are two, in
// rounds that alternate them.
func each(b *testing.B, f func(b *testing.B, bin string)) {
	bins := binaries(b)
	if len(bins) == 1 {
		f(b, bins[0].path)
		return
	}
	for round := range envInt("MAILTRACE_BENCH_ROUNDS", 1) {
		for _, bin := range bins {
			// a name of its own each round: a repeated one gets a '#'
			// suffix, which TempDir's path (a SQLite URL) cannot carry
			b.Run(fmt.Sprintf("%s_%d", bin.name, round+1), func(b *testing.B) { f(b, bin.path) })
		}
	}
}

// messages of the event-dense benchmarks: 300k messages x 7 lines = 2.1M lines.
var denseMessages = envInt("MAILTRACE_DENSE_MESSAGES", 300_000)

func benchDense(b *testing.B, storeURL func(b *testing.B) string) {
	log := filepath.Join(b.TempDir(), "dense.log.gz")
	lines := denseLog(b, log, denseMessages, 2000, true)
	each(b, func(b *testing.B, bin string) {
		for range b.N {
			url := storeURL(b)
			r := run(b, bin, log, url)
			if r.events < 3*int64(denseMessages) {
				b.Fatalf("%d events from %d messages, want at least 3 each", r.events, denseMessages)
			}
			report(b, lines, r)
		}
	})
}

// BenchmarkDenseIngestSQLite: 2.1M lines, 1.2M events into a new SQLite file.
func BenchmarkDenseIngestSQLite(b *testing.B) {
	benchDense(b, func(b *testing.B) string { return "sqlite://" + filepath.Join(b.TempDir(), "dense.db") })
}

// BenchmarkDenseIngestPostgres: the same into a new PostgreSQL database.
func BenchmarkDenseIngestPostgres(b *testing.B) {
	benchDense(b, func(b *testing.B) string { return pgtest.DSN(b) })
}

// BenchmarkUnfinishedIngest: 1M messages that never finish (3 lines each,
// still queued at the end of the log) into PostgreSQL: peak RSS, and every
// message queryable afterwards (counted by the ingest's message count).
func BenchmarkUnfinishedIngest(b *testing.B) {
	n := envInt("MAILTRACE_UNFINISHED_MESSAGES", 1_000_000)
	log := filepath.Join(b.TempDir(), "unfinished.log.gz")
	lines := denseLog(b, log, n, 2000, false)
	each(b, func(b *testing.B, bin string) {
		for range b.N {
			dsn := pgtest.DSN(b)
			r := run(b, bin, log, dsn)
			if r.messages < int64(n) {
				b.Fatalf("%d messages read of %d", r.messages, n)
			}
			if stored := storedMessages(b, dsn); stored != int64(n) {
				b.Fatalf("%d messages queryable of %d", stored, n)
			}
			report(b, lines, r)
		}
	})
}

// storedMessages counts the messages a trace over the log's days finds.
func storedMessages(b *testing.B, dsn string) int64 {
	st, err := storeopen.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	q := mailflow.Query{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)}
	c, err := st.Count(context.Background(), q)
	if err != nil {
		b.Fatal(err)
	}
	return c.Total // one row (the placeholder) per message: none has a recipient yet
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
