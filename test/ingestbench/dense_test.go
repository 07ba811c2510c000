// Package ingestbench measures `mailtrace ingest --file`, the real binary as
// a user runs it, on generated event-dense Postfix logs: wall time, events
// per second and the process's peak RSS (from wait4's rusage). Benchmarks
// only (`make bench`); nothing here asserts a time.
package ingestbench

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// denseLog writes a Postfix log of n messages, inflight of them interleaved
// at any time, each of 7 lines and 4 events (received, a deferral and two
// deliveries), the way a busy relay logs: every line but the cleanup's
// carries an event or a fact of one. finish false leaves every message
// in the queue (no delivery, no removal): 3 lines each, none of which ends
// the message.
func denseLog(tb testing.TB, path string, n, inflight int, finish bool) (lines int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	w := bufio.NewWriterSize(zw, 1<<20)
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	stamp := func(sec int) string { return t0.Add(time.Duration(sec) * time.Second).Format("Jan _2 15:04:05") }
	emit := func(sec int, prog, format string, a ...any) {
		fmt.Fprintf(w, "%s relay1 postfix/%s[%d]: ", stamp(sec), prog, 1000+len(prog))
		fmt.Fprintf(w, format, a...)
		w.WriteByte('\n')
		lines++
	}
	qid := func(i int) string { return fmt.Sprintf("%X%06X", 0xA0+i%16, i) }
	// A window of inflight messages walks step by step, a second a step.
	const steps = 7
	stepsFor := 3
	if finish {
		stepsFor = steps
	}
	for base := 0; base < n; base += inflight {
		end := min(base+inflight, n)
		for s := 0; s < stepsFor; s++ {
			for i := base; i < end; i++ {
				q, sec := qid(i), (base/inflight)*(steps+1)+s // time never goes back, as in a real log
				switch s {
				case 0:
					emit(sec, "smtpd", "%s: client=mail%d.example.net[192.0.2.%d]", q, i%97, 1+i%250)
				case 1:
					emit(sec, "cleanup", "%s: message-id=<%d.dense@example.net>", q, i)
				case 2:
					emit(sec, "qmgr", "%s: from=<sender%d@example.net>, size=%d, nrcpt=2 (queue active)", q, i%5000, 2000+i%90000)
				case 3:
					emit(sec, "smtp", "%s: to=<user%d@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.4.1, status=deferred (connect to mx.example.org[198.51.100.7]:25: Connection timed out)", q, i%20000)
				case 4:
					emit(sec, "smtp", "%s: to=<other%d@example.com>, relay=mx.example.com[203.0.113.9]:25, delay=1.4, delays=0.1/0/0.5/0.8, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X%d)", q, i%7000, i)
				case 5:
					emit(sec, "smtp", "%s: to=<user%d@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=3.2, delays=2.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as Y%d)", q, i%20000, i)
				case 6:
					emit(sec, "qmgr", "%s: removed", q)
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
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

// run ingests file into storeURL with the real binary and returns the
// events it reports and its peak RSS in bytes.
func run(tb testing.TB, file, storeURL string, extra ...string) (events, messages int64, maxRSS int64, wall time.Duration) {
	tb.Helper()
	args := append([]string{"ingest", "--file", file, "--store", storeURL, "--accepted-domain", "example.com", "--retention", "0"}, extra...) // the generated logs are of March 2026
	cmd := exec.CommandContext(context.Background(), binary(tb), args...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall = time.Since(t0)
	if err != nil {
		tb.Fatalf("mailtrace %v: %v\n%s", args, err, out)
	}
	m := statsLine.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("no stats line in:\n%s", out)
	}
	events, _ = strconv.ParseInt(string(m[2]), 10, 64)
	messages, _ = strconv.ParseInt(string(m[3]), 10, 64)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return events, messages, ru.Maxrss * 1024, wall
}

func report(b *testing.B, lines int, events int64, rss int64, wall time.Duration) {
	b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
	b.ReportMetric(float64(lines)/wall.Seconds(), "lines/s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

// messages of the event-dense benchmarks: 300k messages x 7 lines = 2.1M lines.
var denseMessages = envInt("MAILTRACE_DENSE_MESSAGES", 300_000)

func benchDense(b *testing.B, storeURL func(b *testing.B) string) {
	log := filepath.Join(b.TempDir(), "dense.log.gz")
	lines := denseLog(b, log, denseMessages, 2000, true)
	binary(b)
	b.ResetTimer()
	for range b.N {
		url := storeURL(b)
		events, _, rss, wall := run(b, log, url)
		if events < 3*int64(denseMessages) {
			b.Fatalf("%d events from %d messages, want at least 3 each", events, denseMessages)
		}
		report(b, lines, events, rss, wall)
	}
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
	binary(b)
	b.ResetTimer()
	for range b.N {
		events, msgs, rss, wall := run(b, log, pgtest.DSN(b))
		if msgs < int64(n) {
			b.Fatalf("%d messages stored of %d", msgs, n)
		}
		report(b, lines, events, rss, wall)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
