package reportbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/controllers/messagetrace"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	miniotest.Shutdown()
	os.Exit(code)
}

// EnvRows sets the number of rows (default 5,000,000).
const EnvRows = "MAILTRACE_BENCH_ROWS"

// uploadBuffers is what the manager uses (2) unless MAILTRACE_BENCH_UPLOAD_BUFFERS says otherwise.
func uploadBuffers() int {
	if n, err := strconv.Atoi(os.Getenv("MAILTRACE_BENCH_UPLOAD_BUFFERS")); err == nil && n > 0 {
		return n
	}
	return 2
}

// pageSize is the store page size of the report: the controller's default
// unless MAILTRACE_BENCH_PAGE_SIZE says otherwise.
func pageSize() int {
	if n, err := strconv.Atoi(os.Getenv("MAILTRACE_BENCH_PAGE_SIZE")); err == nil && n > 0 {
		return n
	}
	return messagetrace.DefaultReportPageSize
}

func benchRows(b *testing.B) int {
	n := 5_000_000
	if v := os.Getenv(EnvRows); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive number of rows", EnvRows, v)
		}
	}
	return n
}

// seeded returns a PostgreSQL store with storetest.SeedBench's rows and its
// DSN. On a persistent MAILTRACE_TEST_POSTGRES server the database is kept
// and reused (named after the row count and seed version).
func seeded(b *testing.B, rows int) (*postgres.Store, string) {
	ctx := context.Background()
	var dsn string
	if pgtest.External() {
		dsn, _ = pgtest.NamedDSN(b, fmt.Sprintf("mailtrace_reportbench_%d_v%d", rows, storetest.BenchSeedVersion))
	} else {
		dsn = pgtest.DSN(b)
	}
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_seed (rows bigint NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	var have int64
	_ = conn.QueryRow(ctx, `SELECT coalesce(max(rows), 0) FROM bench_seed`).Scan(&have)
	if have != int64(rows) {
		start := time.Now()
		if err := storetest.SeedBench(ctx, st, rows); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO bench_seed VALUES ($1)`, rows); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("seeded %d rows in %s\n", rows, time.Since(start).Round(time.Second))
	}
	return st, dsn
}

// peakMem samples the Go runtime's memory every 20 ms: HeapInuse (live heap
// spans) and Sys (everything the runtime holds from the OS).
type peakMem struct {
	heap, sys atomic.Uint64
	stop      chan struct{}
	wg        sync.WaitGroup
}

func watchMem() *peakMem {
	runtime.GC()
	p := &peakMem{stop: make(chan struct{})}
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapInuse > p.heap.Load() {
			p.heap.Store(m.HeapInuse)
		}
		if m.Sys > p.sys.Load() {
			p.sys.Store(m.Sys)
		}
	}
	sample()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return p
}

func (p *peakMem) done() (heapMiB, sysMiB float64) {
	close(p.stop)
	p.wg.Wait()
	return float64(p.heap.Load()) / (1 << 20), float64(p.sys.Load()) / (1 << 20)
}

type figures struct {
	rows                 int64
	copyBytes, repBytes  int64
	copyTime, reportTime time.Duration
	heapMiB, sysMiB      float64
}

var (
	once   sync.Once
	result figures
)

// BenchmarkSummaryReportVsCopy streams a Summary report of every seeded row
// (90 days, MAILTRACE_BENCH_ROWS rows, default 5,000,000) from PostgreSQL
// through the CSV writer into a multipart upload to MinIO (16 MiB parts),
// and, in the same run, PostgreSQL's own COPY (SELECT ...) TO STDOUT WITH
// CSV of the same rows in the same order to io.Discard. It reports both
// times, their ratio, and the peak HeapInuse and Sys of the process while
// the report runs. The export is measured once per process whatever
// -benchtime says (one 5M-row export is the measurement; repeating it 50
// times would take an hour).
func BenchmarkSummaryReportVsCopy(b *testing.B) {
	b.StopTimer()
	once.Do(func() { result = measure(b) })
	f := result
	// ns/op is the report's time (seeding and COPY are not the measurement).
	b.ReportMetric(float64(f.reportTime.Nanoseconds()), "ns/op")
	b.ReportMetric(float64(f.rows), "rows")
	b.ReportMetric(f.copyTime.Seconds(), "copy-s")
	b.ReportMetric(f.reportTime.Seconds(), "report-s")
	b.ReportMetric(f.reportTime.Seconds()/f.copyTime.Seconds(), "x-copy")
	b.ReportMetric(float64(f.rows)/f.reportTime.Seconds(), "report-rows/s")
	b.ReportMetric(f.heapMiB, "peak-heap-MiB")
	b.ReportMetric(f.sysMiB, "peak-sys-MiB")
}

func measure(b *testing.B) figures {
	rows := benchRows(b)
	st, dsn := seeded(b, rows)
	ep, ak, sk := miniotest.Server(b)
	bucket := miniotest.Bucket(b)
	obj, err := objectstore.New(objectstore.Config{Endpoint: ep, Bucket: bucket, Insecure: true, AccessKey: ak, SecretKey: sk, Prefix: "bench",
		UploadBuffers: uploadBuffers()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	q := mailflow.Query{Start: storetest.BenchEnd.Add(-90 * 24 * time.Hour), End: storetest.BenchEnd}
	var f figures

	// PostgreSQL's own CSV of the same rows and order, to /dev/null.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	sql := fmt.Sprintf(`COPY (SELECT received, sender, recipient, subject, status, message_id, trace_id, size,
		original_client_ip, from_ip, to_ip, direction FROM rows WHERE received >= %d AND received < %d
		ORDER BY received DESC, trace_id, recipient) TO STDOUT WITH CSV HEADER`, q.Start.UnixNano(), q.End.UnixNano())
	start := time.Now()
	tag, err := conn.PgConn().CopyTo(ctx, io.Discard, sql)
	if err != nil {
		b.Fatal(err)
	}
	f.copyTime = time.Since(start)
	copied := tag.RowsAffected()

	// The report, as the controller's worker writes it.
	mem := watchMem()
	start = time.Now()
	res, info, err := report.Upload(ctx, obj, "bench/messagetrace.csv", st, q, report.Options{PageSize: pageSize()}, nil)
	f.reportTime = time.Since(start)
	f.heapMiB, f.sysMiB = mem.done()
	if err != nil {
		b.Fatal(err)
	}
	f.rows, f.repBytes = res.Rows, info.Size
	// (The seed's rows count (message, recipient) pairs before a message's
	// duplicate recipients merge, so the store holds slightly fewer.)
	if res.Rows != copied {
		b.Fatalf("the report has %d rows, COPY %d", res.Rows, copied)
	}
	fmt.Printf("page size %d, upload buffers %d; ", pageSize(), uploadBuffers())
	fmt.Printf("seed %d, rows %d: COPY to io.Discard %s; report to MinIO %s (%d bytes, %.2fx COPY); peak HeapInuse %.1f MiB, Sys %.1f MiB\n",
		rows, res.Rows, f.copyTime.Round(time.Millisecond), f.reportTime.Round(time.Millisecond), f.repBytes,
		f.reportTime.Seconds()/f.copyTime.Seconds(), f.heapMiB, f.sysMiB)
	return f
}
