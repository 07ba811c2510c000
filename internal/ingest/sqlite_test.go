package ingest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

// sqliteFile ingests a maildata file into the memStore and into a real
// SQLite store, and checks that every row the store returns has the status
// the reference reading derives.
func sqliteFile(t *testing.T, file string) (ingested, *sqlite.Store, mailflow.Query) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trace.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	in := ingestFile(t, file, func(evs []mailflow.Event) error { return db.Append(ctx, evs) })
	var lo, hi time.Time
	for _, e := range in.s.byKey {
		if lo.IsZero() || e.Time.Before(lo) {
			lo = e.Time
		}
		if e.Time.After(hi) {
			hi = e.Time
		}
	}
	q := mailflow.Query{Start: lo.Add(-time.Hour), End: hi.Add(time.Hour)}
	// every row of the store against the reference reading, in windows
	// the store accepts
	want := map[string]mailflow.Status{}
	for _, r := range in.s.allRows() {
		want[r.TraceID+"\x00"+r.Recipient] = r.Status
	}
	got := 0
	const step = 80 * 24 * time.Hour
	for start := q.Start; start.Before(q.End); start = start.Add(step) {
		w := mailflow.Query{Start: start, End: start.Add(step)}
		var cur mailflow.Cursor
		for {
			page, err := db.Trace(ctx, w, cur, 500)
			if err != nil {
				t.Fatalf("Trace: %v", err)
			}
			for _, r := range page.Rows {
				got++
				if st, ok := want[r.MessageTraceID+"\x00"+r.Recipient]; !ok {
					t.Errorf("store row %s %q not in the reference reading", r.MessageTraceID, r.Recipient)
				} else if st != r.Status {
					t.Errorf("store row %s %q: %s, reference %s", r.MessageTraceID, r.Recipient, r.Status, st)
				}
			}
			if page.Next == "" {
				break
			}
			cur = page.Next
		}
	}
	if q.End.Sub(q.Start) > mailflow.MaxRange {
		q.Start = q.End.Add(-mailflow.MaxRange)
	}
	if got != len(want) {
		t.Errorf("store has %d rows, the reference reading %d", got, len(want))
	}
	return in, db, q
}

// TestMaildataSQLite runs every expected.json case against the real SQLite
// adapter: the row found by trace ID (from the queue id) and recipient.
func TestMaildataSQLite(t *testing.T) {
	needMaildata(t)
	cases := expectedCases(t)
	ctx := context.Background()
	type opened struct {
		in ingested
		db *sqlite.Store
		q  mailflow.Query
	}
	files := map[string]opened{}
	for _, tc := range cases {
		o, ok := files[tc.File]
		if !ok {
			in, db, q := sqliteFile(t, tc.File)
			o = opened{in, db, q}
			files[tc.File] = o
		}
		q := o.q
		q.Recipients = []string{tc.Recipient}
		if tc.QueueID != nil {
			q.MessageTraceID = o.in.traceOf(*tc.QueueID)
			if q.MessageTraceID == "" {
				t.Errorf("%s %s: no trace", tc.File, *tc.QueueID)
				continue
			}
			// around the message itself (a file may span more than the
			// longest range a query may cover)
			for _, r := range o.in.s.rows(q.MessageTraceID) {
				q.Start, q.End = r.Received.Add(-time.Hour), r.Received.Add(24*time.Hour)
			}
		}
		page, err := o.db.Trace(ctx, q, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Rows) != 1 {
			t.Errorf("%s %v %s: %d rows, want 1", tc.File, tc.QueueID, tc.Recipient, len(page.Rows))
			continue
		}
		r := page.Rows[0]
		if string(r.Status) != tc.Status {
			t.Errorf("%s %v %s: store says %s, want %s", tc.File, tc.QueueID, tc.Recipient, r.Status, tc.Status)
		}
		if tc.BounceOf != "" {
			orig := o.in.traceOf(tc.BounceOf)
			evs, err := o.db.Events(ctx, orig, "")
			if err != nil {
				t.Fatal(err)
			}
			if !hasEvent(evs, mailflow.EventNotify, r.MessageTraceID) {
				t.Errorf("%s: the original %s has no Notify naming %s in the store", tc.File, tc.BounceOf, r.MessageTraceID)
			}
		}
		for _, to := range tc.ExpandedTo {
			q2 := o.q
			q2.MessageTraceID, q2.Recipients = r.MessageTraceID, []string{to}
			p2, err := o.db.Trace(ctx, q2, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(p2.Rows) != 1 || p2.Rows[0].ExpandedFrom != tc.Recipient {
				t.Errorf("%s: member row %s of %s: %+v", tc.File, to, tc.Recipient, p2.Rows)
			}
		}
		if !strings.Contains(tc.File, "logsums") && r.Received.IsZero() {
			t.Errorf("%s: row without received time", tc.File)
		}
		t.Logf("%s %s: %s", filepath.Base(tc.File), tc.Recipient, r.Status)
	}
}

// TestMaildataSQLiteAllFiles: for every log file, every row the real store
// returns has the status the reference reading derives, and none is missing.
func TestMaildataSQLiteAllFiles(t *testing.T) {
	needMaildata(t)
	for _, f := range []string{
		"pmg-log-tracker/tests/test_input_mixed",
		"pmg-log-tracker/tests/test_input_mixed_accept_block_quarantine",
		"pmg-log-tracker/tests/test_input_after_queue_relay_before_lmtp",
		"postfix-logsums/mail.log.gz",
		"postfix-log-parser-youyo/test.log",
		"postfix-log-parser-youyo/test-iso8601.log",
		"postfix-log-parser-youyo/test-milter.log",
		"postfix_exporter-digineo/mail.log",
		"fail2ban/postfix",
		"crowdsec-hub/postfix-logs/postfix-logs.log",
	} {
		t.Run(f, func(t *testing.T) {
			in, _, _ := sqliteFile(t, f)
			t.Logf("%d traces, %d rows", len(in.s.traces), len(in.s.allRows()))
		})
	}
}
