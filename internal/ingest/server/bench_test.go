package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	removeCrashBinary()
	os.Exit(code)
}

// logsums is the real Postfix log of ../shared (see SOURCES.md there): not
// copied into the repository, skipped when absent.
const logsums = "../../../../shared/maildata/postfix-logsums/mail.log.gz"

func readLogsums(tb testing.TB) []byte {
	tb.Helper()
	f, err := os.Open(logsums)
	if err != nil {
		tb.Skipf("%s is absent (a fresh clone): %v", logsums, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var logsumsCfg = ingest.Config{AcceptedDomains: []string{"uhu-banane.de", "uhu-banane.net"}}

// asHost renames the log's host, so that each benchmark iteration stores
// new messages instead of finding them stored (Append is idempotent).
func asHost(data []byte, host string) []byte {
	return bytes.ReplaceAll(data, []byte(" helga "), []byte(" "+host+" "))
}

func gzipFile(tb testing.TB, data []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "mail.log.gz")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
	return p
}

func lineCount(data []byte) int { return bytes.Count(data, []byte{'\n'}) }

// BenchmarkParseCorrelate: the parse and correlate stage alone, the log in
// memory, events thrown away. One op is the whole file.
func BenchmarkParseCorrelate(b *testing.B) {
	data := readLogsums(b)
	n := lineCount(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ingest.IngestReader(context.Background(), bytes.NewReader(data), logsumsCfg, func([]mailflow.Event) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkPflogsumm: pflogsumm (Debian package) summarising the same
// file, uncompressed, for the side-by-side figure. One op is one run.
func BenchmarkPflogsumm(b *testing.B) {
	bin, err := exec.LookPath("pflogsumm")
	if err != nil {
		b.Skip("pflogsumm is not installed (apt-get install pflogsumm)")
	}
	data := readLogsums(b)
	p := filepath.Join(b.TempDir(), "mail.log")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.Fatal(err)
	}
	n := lineCount(data)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command(bin, p).CombinedOutput(); err != nil {
			b.Fatalf("pflogsumm: %v\n%s", err, out)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// benchIngestFiles is `mailtrace ingest --file mail.log.gz` into st: read
// the gzip file, correlate, batch, append. Each op stores the file's
// messages anew (under another host name).
func benchIngestFiles(b *testing.B, st store.Store) {
	data := readLogsums(b)
	n := lineCount(data)
	var events int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := gzipFile(b, asHost(data, fmt.Sprintf("h%d-%d", i, time.Now().UnixNano())))
		b.StartTimer()
		s, err := IngestFiles(context.Background(), st, []string{f}, FileOptions{Pipeline: PipelineOptions{Correlator: logsumsCfg}})
		if err != nil {
			b.Fatal(err)
		}
		events += s.Events
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkIngestFileSQLite(b *testing.B) {
	benchIngestFiles(b, openStore(b))
}

func openPostgres(tb testing.TB) store.Store {
	tb.Helper()
	st, err := postgres.Open(context.Background(), pgtest.DSN(tb), postgres.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func BenchmarkIngestFilePostgres(b *testing.B) {
	benchIngestFiles(b, openPostgres(b))
}

// The real log into PostgreSQL and into SQLite gives the same rows and
// events: the batching writer is adapter-neutral.
func TestIngestFilesPostgresMatchesSQLite(t *testing.T) {
	data := readLogsums(t)
	f := gzipFile(t, data)
	pg, lite := openPostgres(t), openStore(t)
	o := FileOptions{Pipeline: PipelineOptions{Correlator: logsumsCfg}}
	s1, err := IngestFiles(context.Background(), pg, []string{f}, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := IngestFiles(context.Background(), lite, []string{f}, o); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q := mailflow.Query{Start: time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2023, 4, 1, 0, 0, 0, 0, time.UTC)}
	a, err := pg.Count(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lite.Count(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []mailflow.Counts{a, b} {
		for k, v := range c.ByStatus {
			if v == 0 {
				delete(c.ByStatus, k)
			}
		}
	}
	if a.Total == 0 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("PostgreSQL %+v, SQLite %+v", a, b)
	}
	t.Logf("%d lines, %d events, %d messages; rows by status %v", s1.Lines, s1.Events, s1.Messages, a.ByStatus)
}
