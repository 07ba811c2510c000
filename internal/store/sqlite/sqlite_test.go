package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
)

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "trace.db"))
	})
}

func day() mailflow.Query {
	return mailflow.Query{Start: storetest.T0.Add(-24 * time.Hour), End: storetest.T0.Add(24 * time.Hour)}
}

func sample(mtid string) []mailflow.Event {
	t0 := storetest.T0
	return []mailflow.Event{
		{ID: mtid + "-r", Time: t0, MessageTraceID: mtid, Type: mailflow.EventReceive, Sender: "a@example.com", Subject: "hi"},
		{ID: mtid + "-d", Time: t0.Add(time.Second), MessageTraceID: mtid, Recipient: "b@example.com", Type: mailflow.EventDeliver},
	}
}

// Opening a file again applies no migration twice and keeps the data.
func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "trace.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, sample("m1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		s := open(t, path)
		if err := migrate(ctx, s.wdb); err != nil {
			t.Fatalf("migrating an up-to-date database: %v", err)
		}
		var applied int
		if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
			t.Fatal(err)
		}
		want, _ := migrationCount()
		if applied != want {
			t.Errorf("goose_db_version has %d applied migrations, want %d", applied, want)
		}
		c, err := s.Count(ctx, day())
		if err != nil {
			t.Fatal(err)
		}
		if c.Total != 1 || c.ByStatus[mailflow.StatusDelivered] != 1 {
			t.Errorf("after reopening: %+v, want the one delivered row", c)
		}
		_ = s.Close()
	}
}

// Writers are serialised and readers run beside them without SQLITE_BUSY.
func TestConcurrentAppendAndTrace(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "trace.db"))
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := s.Append(ctx, sample(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := s.Trace(ctx, day(), "", 10); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, err := s.Count(ctx, day())
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 100 {
		t.Errorf("%d rows after 4x25 concurrent appends, want 100", c.Total)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), filepath.Join(file, "trace.db")); err == nil {
		t.Error("Open under a regular file succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, "garbage.db"), []byte("this is not a database, just some bytes long enough to matter......"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), filepath.Join(dir, "garbage.db")); err == nil {
		t.Error("Open of a file that is not SQLite succeeded")
	}
}

// Sync syncs the WAL file and the database file, under appends and reads;
// what was appended before it is there after a reopen.
func TestSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.db")
	s := open(t, path)
	ctx := context.Background()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync of a new store: %v", err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Append(ctx, sample(fmt.Sprintf("s%02d", i))); err != nil {
				t.Error(err)
			}
			if err := s.Sync(ctx); err != nil {
				t.Error(err)
			}
			if _, err := s.Count(ctx, day()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := open(t, path).Count(ctx, day())
	if err != nil || c.Total == 0 {
		t.Fatalf("after Sync and a reopen: %+v, %v", c, err)
	}
}

// The writer's page cache is small (it costs twice its size in modernc's
// allocator, and an ingest's peak RSS with it), the readers' large.
func TestCacheSizes(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "trace.db"))
	ctx := context.Background()
	for _, c := range []struct {
		name string
		db   interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}
		want int
	}{{"writer", s.wdb, -16384}, {"reader", s.rdb, -65536}} {
		var got int
		if err := c.db.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: cache_size %d, want %d", c.name, got, c.want)
		}
	}
}
