package postgres_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx", for goose
	"github.com/pressly/goose/v3"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Migration 00005 gives the rows stored before it the folder of their
// latest Save, from their events; and its Down takes the columns away.
func TestFolderMigrationFillsStoredRows(t *testing.T) {
	ctx := context.Background()
	st, dsn := newStore(t)
	recv := D0.Add(time.Hour)
	ev := func(id string, sec int, rcpt string, typ mailflow.EventType, folder string) mailflow.Event {
		return mailflow.Event{ID: id, Time: recv.Add(time.Duration(sec) * time.Second), MessageTraceID: "m1", Recipient: rcpt, Type: typ,
			Sender: "a@example.com", Folder: folder}
	}
	appendAll(t, st,
		ev("r", 0, "", mailflow.EventReceive, ""),
		ev("d", 1, "bob@example.com", mailflow.EventDeliver, ""),
		ev("s1", 1, "bob@example.com", mailflow.EventSave, "INBOX"),
		ev("s2", 5, "bob@example.com", mailflow.EventSave, "Archive"),
		ev("d2", 1, "carol@example.com", mailflow.EventDeliver, ""),
	)
	st.Close()

	// back to before migration 00005
	migrateDownTo(t, ctx, dsn, 4)
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'rows' AND column_name IN ('folder', 'folder_time')`)[0]; n != 0 {
		t.Fatalf("after 00005's Down: %d folder columns", n)
	}

	// up again, as an upgrade opens it
	st = open(t, dsn)
	folders := func() map[string]string {
		t.Helper()
		pg, err := st.Trace(ctx, mailflow.Query{Start: D0, End: D0.Add(24 * time.Hour)}, "", 10)
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
	appendAll(t, st, ev("s0", 3, "bob@example.com", mailflow.EventSave, "Old"))
	if got := folders(); got["bob@example.com"] != "Archive" {
		t.Errorf("after an earlier Save: %v, want bob's Archive", got)
	}
}

// migrateDownTo runs the store's migrations down to version v on the
// database at dsn, as goose's Down would on a database of before.
func migrateDownTo(t *testing.T, ctx context.Context, dsn string, v int64) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, v); err != nil {
		t.Fatalf("down to %d: %v", v, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
