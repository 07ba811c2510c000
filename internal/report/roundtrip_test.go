package report_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var tricky = []string{
	"Quarterly report, Q1",
	`He said "hello"`,
	"multi\nline subject",
	"=cmd|' /C calc'!A0",
	"件名: 会議のお知らせ",
	"-minus",
	"@at",
	"+plus",
	strings.Repeat("long ", 80),
}

// seed appends a small but varied mail flow to a real SQLite store: n
// messages, 1 to 3 recipients each, delivered, deferred, failed, expanded.
func seed(t testing.TB, n int) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trace.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	var evs []mailflow.Event
	for i := range n {
		mt := fmt.Sprintf("MT%05d", i)
		at := base.Add(time.Duration(i) * time.Minute)
		evs = append(evs, mailflow.Event{
			Time: at, MessageTraceID: mt, Type: mailflow.EventReceive, Source: "smtpd",
			MessageID: fmt.Sprintf("<%d.%s@example.org>", i, mt), Sender: fmt.Sprintf("sender%d@example.org", i%7),
			Subject: tricky[i%len(tricky)] + " #" + strconv.Itoa(i), Size: int64(1000 + i),
			Direction: mailflow.DirectionInbound, OriginalClientIP: "203.0.113.9", FromIP: "192.0.2.10",
			ClientHostname: "mx.example.org", ClientIP: "192.0.2.10", ServerHostname: "mail.example.com", ServerIP: "198.51.100.1",
			Detail: "client=mx.example.org[192.0.2.10]",
		})
		for j := range 1 + i%3 {
			rcpt := fmt.Sprintf("user%d@example.com", j)
			e := mailflow.Event{
				Time: at.Add(time.Duration(j+1) * time.Second), MessageTraceID: mt, Recipient: rcpt, Source: "smtp",
				ToIP: "198.51.100.25", Relay: "mx2.example.com[198.51.100.25]:25",
			}
			switch (i + j) % 4 {
			case 0:
				e.Type, e.DSN, e.SMTPResponse, e.Detail = mailflow.EventDeliver, "2.0.0", "250 2.0.0 Ok: queued as ABC", "status=sent"
			case 1:
				e.Type, e.DSN, e.SMTPResponse, e.Detail = mailflow.EventDefer, "4.4.1", "connect to mx2: Connection timed out", "status=deferred, will retry"
			case 2:
				e.Type, e.DSN, e.SMTPResponse, e.Detail = mailflow.EventFail, "5.1.1", "550 5.1.1 <"+rcpt+">: Recipient address rejected", "status=bounced"
			case 3:
				e.Type, e.Detail = mailflow.EventExpand, "expanded by alias, \"team\""
			}
			evs = append(evs, mailflow.Event{Time: e.Time.Add(-time.Second / 2), MessageTraceID: mt, Recipient: rcpt, Type: mailflow.EventSubmit, Source: "qmgr", Detail: "queued"}, e)
			if e.Type == mailflow.EventDeliver && i%2 == 0 {
				// the mailbox server stored it: the row's mailbox_folder
				evs = append(evs, mailflow.Event{Time: e.Time, MessageTraceID: mt, Recipient: rcpt, Type: mailflow.EventSave,
					Source: "dovecot", Folder: []string{"INBOX", "Junk", "=Archive"}[i%3], Detail: "stored into the mailbox folder"})
			}
		}
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatalf("Append: %v", err)
	}
	return st
}

var seedQuery = mailflow.Query{Start: base.Add(-time.Hour), End: base.Add(48 * time.Hour)}

// wantSummary is a summary record: Exchange's columns, then mailbox_folder.
func wantSummary(r mailflow.Row) []string {
	return append(wantRow(r), report.SafeCell(r.Folder))
}

// wantRow is the row's cells of Exchange's columns.
func wantRow(r mailflow.Row) []string {
	subj := []rune(r.Subject)
	if len(subj) > 256 {
		subj = subj[:256]
	}
	s := report.SafeCell
	return []string{
		r.Received.UTC().Format(time.RFC3339Nano), s(r.Sender), s(r.Recipient), s(string(subj)), s(string(r.Status)),
		strconv.FormatInt(r.Size, 10), s(r.MessageID), s(r.MessageTraceID), s(r.OriginalClientIP), s(r.FromIP), s(r.ToIP),
		s(string(r.Direction)),
	}
}

func wantEvent(e mailflow.Event) []string {
	s := report.SafeCell
	return []string{
		e.Time.UTC().Format(time.RFC3339Nano), s(string(e.Type)), s(e.Source), s(e.SMTPResponse), s(e.ServerIP),
		s(e.ServerHostname), s(e.ClientIP), s(e.ClientHostname), s(e.Relay), s(e.DSN), s(e.Detail),
		s(e.Action), s(e.Score), s(strings.Join(e.Symbols, " ")),
	}
}

// want computes the expected records (header first) straight from the store.
func want(t testing.TB, st store.Store, q mailflow.Query, kind report.Kind) [][]string {
	t.Helper()
	ctx := context.Background()
	recs := [][]string{report.SummaryColumns}
	if kind == report.Detailed {
		recs[0] = report.DetailedColumns
	}
	var cur mailflow.Cursor
	for {
		p, err := st.Trace(ctx, q, cur, 1000)
		if err != nil {
			t.Fatalf("Trace: %v", err)
		}
		for _, r := range p.Rows {
			if kind == report.Summary {
				recs = append(recs, wantSummary(r))
				continue
			}
			evs, err := st.Events(ctx, r.MessageTraceID, r.Recipient)
			if err != nil {
				t.Fatalf("Events: %v", err)
			}
			for _, e := range evs {
				recs = append(recs, append(append(wantRow(r), wantEvent(e)...), report.SafeCell(r.Folder)))
			}
		}
		if p.Next == "" {
			return recs
		}
		cur = p.Next
	}
}

func compare(t *testing.T, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d records, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("record %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestRoundTripSQLite(t *testing.T) {
	st := seed(t, 120)
	for _, kind := range []report.Kind{report.Summary, report.Detailed} {
		exp := want(t, st, seedQuery, kind)
		if len(exp) < 200 {
			t.Fatalf("%s: only %d expected records: the seed is too small to mean much", kind, len(exp))
		}
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gzip=%v", kind, gz), func(t *testing.T) {
				var buf bytes.Buffer
				var calls int
				var last int64
				res, err := report.Write(context.Background(), &buf, st, seedQuery,
					report.Options{Kind: kind, Gzip: gz, PageSize: 7}, func(rows int64) { calls++; last = rows })
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				compare(t, parse(t, buf.Bytes(), gz), exp)
				sum := sha256.Sum256(buf.Bytes())
				wantEnc := ""
				if gz {
					wantEnc = "gzip"
				}
				if res.Rows != int64(len(exp)-1) || res.Bytes != int64(buf.Len()) || res.SHA256 != hex.EncodeToString(sum[:]) ||
					res.ContentType != "text/csv; charset=utf-8" || res.ContentEncoding != wantEnc {
					t.Errorf("Result %+v; want %d rows, %d bytes, sha256 %x", res, len(exp)-1, buf.Len(), sum)
				}
				if calls < 2 || last != res.Rows {
					t.Errorf("progress called %d times, last with %d rows; want one call per page ending at %d", calls, last, res.Rows)
				}
			})
		}
	}
	// A filter: the report holds exactly what the trace returns.
	q := seedQuery
	q.Statuses = []mailflow.Status{mailflow.StatusFailed}
	q.Recipients = []string{"user1@*"}
	var buf bytes.Buffer
	if _, err := report.Write(context.Background(), &buf, st, q, report.Options{PageSize: 3}, nil); err != nil {
		t.Fatal(err)
	}
	exp := want(t, st, q, report.Summary)
	if len(exp) < 3 {
		t.Fatalf("the filtered trace has %d rows", len(exp)-1)
	}
	compare(t, parse(t, buf.Bytes(), false), exp)
}

func reportStore(t testing.TB, partSize int64) (objectstore.Store, string) {
	t.Helper()
	ep, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	obj, err := objectstore.New(objectstore.Config{Endpoint: ep, Insecure: true, AccessKey: ak, SecretKey: sk, Bucket: bucket, Prefix: "mailtrace", PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	return obj, bucket
}

func TestUploadRoundTrip(t *testing.T) {
	st := seed(t, 150)
	obj, _ := reportStore(t, 0)
	ctx := context.Background()
	for _, kind := range []report.Kind{report.Summary, report.Detailed} {
		t.Run(string(kind), func(t *testing.T) {
			key := report.Key("reports", "mail", "weekly-"+strings.ToLower(string(kind)), "0f1e2d3c", true)
			res, info, err := report.Upload(ctx, obj, key, st, seedQuery, report.Options{
				Kind: kind, Gzip: true, PageSize: 50,
				Metadata: map[string]string{"namespace": "mail", "name": "weekly", "uid": "0f1e2d3c"},
			}, nil)
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if info.Key != key || info.Size != res.Bytes {
				t.Errorf("UploadInfo %+v, Result %+v", info, res)
			}
			oi, err := obj.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if oi.ContentType != report.ContentType || oi.ContentEncoding != "gzip" || oi.Size != res.Bytes ||
				oi.Metadata["namespace"] != "mail" || oi.Metadata["uid"] != "0f1e2d3c" || oi.Metadata[report.MetaKind] != string(kind) {
				t.Errorf("Stat = %+v", oi)
			}
			rc, err := obj.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != res.SHA256 {
				t.Errorf("the object's sha256 %x differs from the Result's %s", sum, res.SHA256)
			}
			compare(t, parse(t, raw, true), want(t, st, seedQuery, kind))
		})
	}
}

// failingStore fails Trace after some pages.
type failingStore struct {
	store.Store
	pages int
	err   error
}

func (f *failingStore) Trace(ctx context.Context, q mailflow.Query, c mailflow.Cursor, limit int) (mailflow.Page, error) {
	if f.pages == 0 {
		return mailflow.Page{}, f.err
	}
	f.pages--
	return f.Store.Trace(ctx, q, c, limit)
}

func TestUploadFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("trace store fails mid-report", func(t *testing.T) {
		obj, _ := reportStore(t, 0)
		boom := errors.New("trace store lost")
		st := &failingStore{Store: newGen(20000, 0), pages: 5, err: boom}
		key := report.Key("", "ns", "t", "u", false)
		_, _, err := report.Upload(ctx, obj, key, st, anyQuery, report.Options{PageSize: 1000}, nil)
		if !errors.Is(err, boom) || !errors.Is(err, report.ErrTraceStore) || errors.Is(err, objectstore.ErrUnreachable) {
			t.Fatalf("Upload = %v, want the trace store's error", err)
		}
		if _, err := obj.Stat(ctx, key); !errors.Is(err, objectstore.ErrNotFound) {
			t.Errorf("Stat after a failed report = %v, want ErrNotFound", err)
		}
	})
	t.Run("bucket missing", func(t *testing.T) {
		ep, ak, sk := miniotest.Server(t)
		obj, err := objectstore.New(objectstore.Config{Endpoint: ep, Insecure: true, AccessKey: ak, SecretKey: sk, Bucket: "mt-missing"})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = report.Upload(ctx, obj, "k.csv", newGen(100000, 0), anyQuery, report.Options{}, nil)
		if !errors.Is(err, objectstore.ErrBucketMissing) || objectstore.Reason(err) != objectstore.ReasonBucketMissing {
			t.Fatalf("Upload = %v, want ErrBucketMissing", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		obj, _ := reportStore(t, 0)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		key := "cancelled.csv"
		_, _, err := report.Upload(ctx, obj, key, newGen(100000, 0), anyQuery, report.Options{}, func(rows int64) {
			if rows > 20000 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Upload = %v, want context.Canceled", err)
		}
		if _, err := obj.Stat(context.Background(), key); !errors.Is(err, objectstore.ErrNotFound) {
			t.Errorf("Stat after a cancelled report = %v, want ErrNotFound", err)
		}
	})
}

// genStore generates n rows on the fly (and three events per row), so a
// large report can be written without the store itself holding memory.
type genStore struct {
	n      int
	subj   string
	events bool
}

func newGen(n, subjectLen int) *genStore {
	return &genStore{n: n, subj: strings.Repeat("Subject with, some \"quoting\" ", 1+subjectLen/30)[:max(subjectLen, 10)]}
}

func (g *genStore) row(i int) mailflow.Row {
	return mailflow.Row{
		Received: base.Add(-time.Duration(i) * time.Second), Sender: "sender" + strconv.Itoa(i%97) + "@example.org",
		Recipient: "user" + strconv.Itoa(i%1013) + "@example.com", Subject: g.subj, Status: mailflow.StatusDelivered,
		MessageID: "<" + strconv.Itoa(i) + "@example.org>", MessageTraceID: "MT" + strconv.Itoa(i), Size: int64(i),
		OriginalClientIP: "203.0.113.9", FromIP: "192.0.2.10", ToIP: "198.51.100.25", Direction: mailflow.DirectionInbound,
	}
}

func (g *genStore) Trace(ctx context.Context, q mailflow.Query, c mailflow.Cursor, limit int) (mailflow.Page, error) {
	start := 0
	if c != "" {
		start, _ = strconv.Atoi(string(c))
	}
	end := min(start+limit, g.n)
	p := mailflow.Page{Rows: make([]mailflow.Row, 0, end-start)}
	for i := start; i < end; i++ {
		p.Rows = append(p.Rows, g.row(i))
	}
	if end < g.n {
		p.Next = mailflow.Cursor(strconv.Itoa(end))
	}
	return p, ctx.Err()
}

func (g *genStore) ScopedEvents(ctx context.Context, _ []string, mtid, rcpt string) ([]mailflow.Event, error) {
	return g.Events(ctx, mtid, rcpt)
}

func (g *genStore) Events(ctx context.Context, mtid, rcpt string) ([]mailflow.Event, error) {
	t := base
	return []mailflow.Event{
		{Time: t, MessageTraceID: mtid, Type: mailflow.EventReceive, Source: "smtpd", ClientIP: "192.0.2.10", Detail: "client=mx.example.org[192.0.2.10]"},
		{Time: t.Add(time.Second), MessageTraceID: mtid, Recipient: rcpt, Type: mailflow.EventSubmit, Source: "qmgr"},
		{Time: t.Add(2 * time.Second), MessageTraceID: mtid, Recipient: rcpt, Type: mailflow.EventDeliver, Source: "smtp", DSN: "2.0.0", SMTPResponse: "250 2.0.0 Ok", Relay: "mx2[198.51.100.25]:25"},
	}, nil
}
func (g *genStore) Append(context.Context, []mailflow.Event) error { return nil }
func (g *genStore) Count(context.Context, mailflow.Query) (mailflow.Counts, error) {
	return mailflow.Counts{}, nil
}
func (g *genStore) Prune(context.Context, time.Time) error { return nil }
func (g *genStore) Ping(context.Context) error             { return nil }
func (g *genStore) Close() error                           { return nil }

// heapWatch samples the heap in use from progress callbacks.
type heapWatch struct {
	base, peak uint64
}

func newHeapWatch() *heapWatch {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &heapWatch{base: m.HeapInuse, peak: m.HeapInuse}
}

func (h *heapWatch) sample(int64) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.peak = max(h.peak, m.HeapInuse)
}

func (h *heapWatch) growth() uint64 { return h.peak - min(h.base, h.peak) }

// TestMemoryBounded streams 200k rows (about 70 MB of CSV) and checks the
// heap never grows by more than a fraction of that: rows are not held.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("large report")
	}
	const rows = 200000
	g := newGen(rows, 200)
	h := newHeapWatch()
	res, err := report.Write(context.Background(), io.Discard, g, anyQuery, report.Options{PageSize: 1000}, h.sample)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != rows {
		t.Fatalf("Rows = %d", res.Rows)
	}
	const bound = 32 << 20
	t.Logf("%d rows, %d MiB of CSV, heap grew by at most %.1f MiB", res.Rows, res.Bytes>>20, float64(h.growth())/(1<<20))
	if res.Bytes < 2*bound {
		t.Fatalf("the report (%d bytes) is too small for the bound to mean anything", res.Bytes)
	}
	if h.growth() > bound {
		t.Errorf("heap grew by %d MiB writing %d MiB: rows are being held", h.growth()>>20, res.Bytes>>20)
	}
}

// TestUploadMemoryBounded: the same through Upload into MinIO, where an
// unknown size must not make minio-go buffer hundreds of MiB.
func TestUploadMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("large report")
	}
	const rows = 200000
	obj, _ := reportStore(t, objectstore.MinPartSize)
	g := newGen(rows, 200)
	h := newHeapWatch()
	res, info, err := report.Upload(context.Background(), obj, "big.csv", g, anyQuery, report.Options{PageSize: 1000}, h.sample)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != rows || info.Size != res.Bytes {
		t.Fatalf("Result %+v, UploadInfo %+v", res, info)
	}
	const bound = 48 << 20
	t.Logf("uploaded %d MiB, heap grew by at most %.1f MiB", res.Bytes>>20, float64(h.growth())/(1<<20))
	if h.growth() > bound {
		t.Errorf("heap grew by %d MiB uploading %d MiB", h.growth()>>20, res.Bytes>>20)
	}
}

func BenchmarkWriteSummary(b *testing.B) { benchWrite(b, report.Options{}) }

func BenchmarkWriteSummaryGzip(b *testing.B) { benchWrite(b, report.Options{Gzip: true}) }

func BenchmarkWriteDetailed(b *testing.B) { benchWrite(b, report.Options{Kind: report.Detailed}) }

func benchWrite(b *testing.B, opts report.Options) {
	const rows = 20000
	g := newGen(rows, 60)
	var written, bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := report.Write(context.Background(), io.Discard, g, anyQuery, opts, nil)
		if err != nil {
			b.Fatal(err)
		}
		written += res.Rows
		bytes += res.Bytes
	}
	b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(bytes)/float64(written), "B/row")
}

// BenchmarkWriteSummarySQLite measures a summary report read from a real
// SQLite store (about 12k rows), so the figure includes the store's paging.
func BenchmarkWriteSummarySQLite(b *testing.B) {
	st := seed(b, 6000)
	q := mailflow.Query{Start: base.Add(-time.Hour), End: base.Add(10 * 24 * time.Hour)}
	b.ResetTimer()
	var written int64
	for b.Loop() {
		res, err := report.Write(context.Background(), io.Discard, st, q, report.Options{PageSize: 1000}, nil)
		if err != nil {
			b.Fatal(err)
		}
		written += res.Rows
	}
	b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "rows/s")
}
