package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
)

// Events' keys are stored behind their time (migration 00004), so that
// the UNIQUE index on them grows at its end; a database of before has its
// keys rewritten in that form, and its events are still recognised when
// they come again.
func TestEventKeyMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.db")
	t0 := storetest.T0
	evs := []mailflow.Event{
		{Time: t0, MessageTraceID: "m1", Type: mailflow.EventReceive, Sender: "a@example.com"}, // a derived key
		{Time: t0.Add(time.Second), MessageTraceID: "m1", Recipient: "bob@example.com", Type: mailflow.EventDeliver},
		{ID: "m1-custom", Time: t0.Add(2 * time.Second), MessageTraceID: "m1", Recipient: "bob@example.com", Type: mailflow.EventSave, Folder: "INBOX"},
		{ID: "0123456789ABCDEF0123456789ABCDEF", Time: t0.Add(3 * time.Second), MessageTraceID: "m1", Recipient: "carol@example.com", Type: mailflow.EventDeliver},
		{ID: "0123456789abcdef0123456789abcdef", Time: t0.Add(3 * time.Second), MessageTraceID: "m1", Recipient: "carol@example.com", Type: mailflow.EventDefer},
	}
	var keys []string
	for i := range evs {
		keys = append(keys, evs[i].Key())
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stored := func(db *sql.DB) (out []any) {
		t.Helper()
		rows, err := db.QueryContext(ctx, `SELECT key FROM events ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k any
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			out = append(out, k)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantBlobs := func(got []any) {
		t.Helper()
		if len(got) != len(evs) {
			t.Fatalf("%d events stored, want %d", len(got), len(evs))
		}
		for i, k := range got {
			want := storedKey(nil, keys[i], evs[i].Time.UnixNano())
			if b, ok := k.([]byte); !ok || !bytes.Equal(b, want) {
				t.Errorf("event %d: key %#v, want %x", i, k, want)
			}
		}
	}
	db, err := sql.Open("sqlite", dsn(path, "immediate"))
	if err != nil {
		t.Fatal(err)
	}
	wantBlobs(stored(db))

	// back to before migration 00004: the keys as they were
	migrateDownTo(t, ctx, db, 3)
	for i, k := range stored(db) {
		if s, ok := k.(string); !ok || s != keys[i] {
			t.Errorf("after 00004's Down, event %d: key %#v, want %q", i, k, keys[i])
		}
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
	wantBlobs(stored(db))
	// the events of before are recognised: appending them again adds none
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if got := stored(db); len(got) != len(evs) {
		t.Errorf("%d events after appending them again, want %d", len(got), len(evs))
	}
	got, err := s.Events(ctx, "m1", "carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("Events(m1, carol): %d, want 3 (the Receive and both keys that differ in case)", len(got))
	}
}

// The stored form of a key: its time first, so that keys sort by time.
func TestStoredKeyOrder(t *testing.T) {
	a := storedKey(nil, "ffffffffffffffffffffffffffffffff", 1)
	b := storedKey(nil, "00000000000000000000000000000000", 2)
	c := storedKey(nil, "x", 2)
	if bytes.Compare(a, b) >= 0 || bytes.Compare(b, c) >= 0 {
		t.Errorf("storedKey order: %x, %x, %x; want ascending", a, b, c)
	}
	if len(a) != 8+1+16 || len(c) != 8+1+1 {
		t.Errorf("storedKey lengths %d and %d, want 25 and 10", len(a), len(c))
	}
}
