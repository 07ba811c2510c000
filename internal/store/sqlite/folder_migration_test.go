package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
)

// Migration 00003 gives the rows stored before it the folder of their
// latest Save, from their events; and its Down takes the columns away.
func TestFolderMigrationFillsStoredRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := storetest.T0
	ev := func(id string, sec int, rcpt string, typ mailflow.EventType, folder string) mailflow.Event {
		return mailflow.Event{ID: id, Time: t0.Add(time.Duration(sec) * time.Second), MessageTraceID: "m1", Recipient: rcpt, Type: typ,
			Sender: "a@example.com", Folder: folder}
	}
	if err := s.Append(ctx, []mailflow.Event{
		ev("r", 0, "", mailflow.EventReceive, ""),
		ev("d", 1, "bob@example.com", mailflow.EventDeliver, ""),
		ev("s1", 1, "bob@example.com", mailflow.EventSave, "INBOX"),
		ev("s2", 5, "bob@example.com", mailflow.EventSave, "Archive"),
		ev("d2", 1, "carol@example.com", mailflow.EventDeliver, ""),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// back to before migration 00003
	db, err := sql.Open("sqlite", dsn(path, "immediate"))
	if err != nil {
		t.Fatal(err)
	}
	migrateDownTo(t, ctx, db, 2)
	var cols int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('rows') WHERE name IN ('folder', 'folder_time')`).Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("after 00003's Down: %d folder columns (%v)", cols, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// up again, as an upgrade opens it
	s = open(t, path)
	folders := func() map[string]string {
		t.Helper()
		pg, err := s.Trace(ctx, day(), "", 10)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range pg.Rows {
			out[r.Recipient] = r.Folder
		}
		return out
	}
	if got := folders(); got["bob@example.com"] != "Archive" || got["carol@example.com"] != "" || len(got) != 2 {
		t.Errorf("after the migration: %v, want bob's Archive (his latest Save) and no folder for carol", got)
	}
	// the Save's time came along: an earlier Save arriving now does not replace it
	if err := s.Append(ctx, []mailflow.Event{ev("s0", 3, "bob@example.com", mailflow.EventSave, "Old")}); err != nil {
		t.Fatal(err)
	}
	if got := folders(); got["bob@example.com"] != "Archive" {
		t.Errorf("after an earlier Save: %v, want bob's Archive", got)
	}
}
