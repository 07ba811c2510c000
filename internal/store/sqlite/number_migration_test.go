package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
)

// Messages are numbered in arrival order and their events and rows are
// located by the number (migration 00005). A database of before gets the
// numbers, keeps every message, event and row, and goes on as if it had
// been written so: a trace and a message's events read the same, the
// same events appended again add nothing, and later events still join
// their message (a placeholder row replaced, a status changed).
func TestMessageNumberMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.db")
	t0 := storetest.T0
	first := []mailflow.Event{
		{Time: t0.Add(time.Minute), MessageTraceID: "m2", Type: mailflow.EventReceive, Sender: "x@example.net", Subject: "later"},
		{Time: t0, MessageTraceID: "m1", Type: mailflow.EventReceive, Sender: "a@example.com", Subject: "hello"},
		{Time: t0.Add(time.Second), MessageTraceID: "m1", Recipient: "bob@example.com", Type: mailflow.EventDeliver},
		{Time: t0.Add(2 * time.Second), MessageTraceID: "m1", Recipient: "carol@example.com", Type: mailflow.EventDefer},
	}
	later := []mailflow.Event{
		{Time: t0.Add(time.Hour), MessageTraceID: "m1", Recipient: "carol@example.com", Type: mailflow.EventDeliver},
		{Time: t0.Add(time.Hour), MessageTraceID: "m2", Recipient: "dave@example.org", Type: mailflow.EventFail},
	}
	q := mailflow.Query{Start: t0.Add(-time.Hour), End: t0.Add(24 * time.Hour)}
	trace := func(s *Store, q mailflow.Query) []mailflow.Row {
		t.Helper()
		p, err := s.Trace(ctx, q, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return p.Rows
	}
	events := func(s *Store, mtid, rcpt string) []mailflow.Event {
		t.Helper()
		evs, err := s.Events(ctx, mtid, rcpt)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	wantRows := trace(s, q)
	wantEvents := events(s, "m1", "carol@example.com")
	if len(wantRows) != 3 || len(wantEvents) != 2 {
		t.Fatalf("before: %d rows and %d events of (m1, carol), want 3 and 2", len(wantRows), len(wantEvents))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// back to before migration 00005: the tables as they were
	db, err := sql.Open("sqlite", dsn(path, "immediate"))
	if err != nil {
		t.Fatal(err)
	}
	migrateDownTo(t, ctx, db, 4)
	for _, table := range []string{"messages", "events", "rows"} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = 'mid'`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("after 00005's Down, %s still has mid", table)
		}
	}
	counts := func(db *sql.DB) [3]int {
		t.Helper()
		var c [3]int
		for i, table := range []string{"messages", "events", "rows"} {
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&c[i]); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	if got := counts(db); got != [3]int{2, 4, 3} {
		t.Errorf("after 00005's Down: messages, events, rows = %v, want [2 4 3]", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// up again, as an upgrade opens it
	s = open(t, path)
	db, err = sql.Open("sqlite", dsn(path, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// numbered in the order the messages began; every event and row
	// carries its message's number
	var m1, m2 int64
	if err := db.QueryRowContext(ctx, `SELECT (SELECT mid FROM messages WHERE mtid = 'm1'), (SELECT mid FROM messages WHERE mtid = 'm2')`).Scan(&m1, &m2); err != nil {
		t.Fatal(err)
	}
	if m1 >= m2 {
		t.Errorf("m1 numbered %d, m2 %d: want m1 first (it began first)", m1, m2)
	}
	for _, table := range []string{"events", "rows"} {
		var wrong int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` AS x LEFT JOIN messages AS m ON m.mtid = x.mtid
			WHERE m.mid IS NULL OR x.mid <> m.mid`).Scan(&wrong); err != nil {
			t.Fatal(err)
		}
		if wrong != 0 {
			t.Errorf("%d of %s without their message's number", wrong, table)
		}
	}
	if got := trace(s, q); !reflect.DeepEqual(got, wantRows) {
		t.Errorf("trace after the migration:\n%+v\nwant\n%+v", got, wantRows)
	}
	if got := events(s, "m1", "carol@example.com"); !reflect.DeepEqual(got, wantEvents) {
		t.Errorf("events of (m1, carol) after the migration:\n%+v\nwant\n%+v", got, wantEvents)
	}
	if got := trace(s, mailflow.Query{Start: q.Start, End: q.End, MessageTraceID: "m2"}); len(got) != 1 || got[0].Recipient != "" {
		t.Errorf("trace of m2 by its ID: %+v, want its placeholder row", got)
	}

	// the events of before are recognised: appending them again adds none
	if err := s.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	if got := counts(db); got != [3]int{2, 4, 3} {
		t.Errorf("after appending the same events: messages, events, rows = %v, want [2 4 3]", got)
	}
	// later events join their messages
	if err := s.Append(ctx, later); err != nil {
		t.Fatal(err)
	}
	status := map[string]mailflow.Status{}
	for _, r := range trace(s, q) {
		status[r.MessageTraceID+" "+r.Recipient] = r.Status
	}
	want := map[string]mailflow.Status{
		"m1 bob@example.com":   mailflow.StatusDelivered,
		"m1 carol@example.com": mailflow.StatusDelivered,
		"m2 dave@example.org":  mailflow.StatusFailed,
	}
	if !reflect.DeepEqual(status, want) {
		t.Errorf("after later events: %v, want %v", status, want)
	}
	if got := events(s, "m2", "dave@example.org"); len(got) != 2 {
		t.Errorf("events of (m2, dave): %d, want 2 (the Receive and the Bounce)", len(got))
	}
}

// An append whose events of a new trace ID are all stored already (under
// another trace ID: keys name events, whatever message claims them) adds
// no message: a trace shows only what new events said.
func TestAppendOnlyKnownEventsAddsNoMessage(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "trace.db"))
	t0 := storetest.T0
	e := mailflow.Event{ID: "k1", Time: t0, MessageTraceID: "m1", Type: mailflow.EventReceive, Sender: "a@example.com"}
	if err := s.Append(ctx, []mailflow.Event{e}); err != nil {
		t.Fatal(err)
	}
	e.MessageTraceID = "m9"
	if err := s.Append(ctx, []mailflow.Event{e}); err != nil {
		t.Fatal(err)
	}
	p, err := s.Trace(ctx, mailflow.Query{Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 1 || p.Rows[0].MessageTraceID != "m1" {
		t.Errorf("rows %+v, want m1's only", p.Rows)
	}
}

// When some of a message's events are stored already (a replay beside
// new lines), the new ones, and only they, are merged: here 40 events of
// one message, every third known.
func TestAppendPartlyKnownEvents(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "trace.db"))
	t0 := storetest.T0
	var all, known []mailflow.Event
	for i := range 40 {
		e := mailflow.Event{Time: t0.Add(time.Duration(i) * time.Second), MessageTraceID: "m1",
			Recipient: "r" + string(rune('a'+i%26)) + "@example.com", Type: mailflow.EventDefer}
		if i == 0 {
			e = mailflow.Event{Time: t0, MessageTraceID: "m1", Type: mailflow.EventReceive, Sender: "a@example.com"}
		}
		if i == 39 {
			e.Type, e.Recipient = mailflow.EventDeliver, "ra@example.com"
		}
		all = append(all, e)
		if i%3 == 0 && i != 39 {
			known = append(known, e)
		}
	}
	if err := s.Append(ctx, known); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, all); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, all); err != nil { // all known: nothing
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(s.path, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 40 {
		t.Errorf("%d events stored, want 40", n)
	}
	evs, err := s.Events(ctx, "m1", "ra@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// the Receive, and ra's: i = 26 (Defer) and 39 (Deliver)
	if len(evs) != 3 {
		t.Errorf("events of (m1, ra): %d, want 3", len(evs))
	}
	p, err := s.Trace(ctx, mailflow.Query{Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]mailflow.Status{}
	for _, r := range p.Rows {
		status[r.Recipient] = r.Status
	}
	if len(status) != 26 || status["ra@example.com"] != mailflow.StatusDelivered || status["rb@example.com"] != mailflow.StatusPending {
		t.Errorf("rows %v: want 26 recipients, ra Delivered, the others Pending", status)
	}
}

// migrateDownTo runs the store's migrations down to version v on db, as
// goose's Down would on a database of before.
func migrateDownTo(t *testing.T, ctx context.Context, db *sql.DB, v int64) {
	t.Helper()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, v); err != nil {
		t.Fatalf("down to %d: %v", v, err)
	}
}
