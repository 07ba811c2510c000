package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// cpStats is what the checkpointer recorded.
func cpStats(s *Store) (runs, guarded, log, copied int) {
	s.cp.mu.Lock()
	defer s.cp.mu.Unlock()
	return s.cp.runs, s.cp.guarded, s.cp.log, s.cp.copied
}

// batch is n messages of two rows each.
func batch(prefix string, n int) []mailflow.Event {
	var evs []mailflow.Event
	for i := range n {
		evs = append(evs, sample(fmt.Sprintf("%s-%04d", prefix, i))...)
	}
	return evs
}

// A writer that never pauses: each append begins before the background
// checkpoint of the previous one ends, so the WAL is never all copied when
// a transaction begins, and a passive checkpoint alone never has it
// restart. Past its threshold, the checkpointer's second checkpoint, under
// the writer's mutex, copies what was committed during the first, and the
// next append restarts the WAL. (The checkpoints run here on the test's
// goroutine, in that order; the goroutine's first look at the WAL is an
// hour away.)
func TestCheckpointerRestartsWALUnderWriter(t *testing.T) {
	ctx := context.Background()
	s, err := openWith(ctx, filepath.Join(t.TempDir(), "trace.db"),
		options{backstopPages: 0, restartPages: 1, cpInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, batch("a", 20)); err != nil {
		t.Fatal(err)
	}
	s.cp.beforeGuarded = func() { // an append committed during the first checkpoint
		if err := s.Append(ctx, batch("b", 20)); err != nil {
			t.Error(err)
		}
	}
	s.cp.checkpoint(ctx)
	_, guarded, logAB, copied := cpStats(s)
	if guarded != 1 || copied != logAB {
		t.Fatalf("%d checkpoints under wmu, %d of %d pages copied; want 1, all", guarded, copied, logAB)
	}
	if err := s.Append(ctx, batch("c", 20)); err != nil {
		t.Fatal(err)
	}
	logC, err := s.cp.passive(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if logC >= logAB {
		t.Errorf("the WAL holds %d pages after the third append, %d after the first two: not restarted", logC, logAB)
	}
	if err := s.CheckpointErr(); err != nil {
		t.Error(err)
	}
}

// Through a long series of appends the WAL stays near the checkpointer's
// restart threshold, a fraction of what it reaches without checkpoints (the
// writer's automatic checkpoint off in both), and everything appended is
// there after Close and a reopen.
func TestCheckpointerBoundsWAL(t *testing.T) {
	const restart = 64
	withCP, guarded := appendSeries(t, options{backstopPages: 0, restartPages: restart, cpInterval: time.Millisecond})
	without, _ := appendSeries(t, options{backstopPages: 0, restartPages: 1 << 30, cpInterval: time.Hour})
	t.Logf("the WAL reached %d pages with the checkpointer (restart at %d, %d checkpoints under the writer's mutex), %d without",
		withCP, restart, guarded, without)
	// Without, the WAL holds every append; with, a few (3% to 10% of the
	// appends here, with benchmarks writing to the same disk). The margin
	// is for a checkpointer that falls behind the writer while its fsyncs
	// wait for a busy disk.
	if withCP > without/2 {
		t.Errorf("the WAL reached %d pages, want at most half of %d", withCP, without)
	}
	if guarded == 0 {
		t.Error("no checkpoint under the writer's mutex")
	}
}

// appendSeries appends 60 batches into a new store opened with o and
// returns the WAL's largest size in pages and the checkpoints run under
// wmu; it checks that a reopen finds every row.
func appendSeries(t *testing.T, o options) (maxPages int64, guarded int) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.db")
	s, err := openWith(ctx, path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pageSize int64
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	const appends, perAppend = 60, 100
	var maxWAL int64
	for i := range appends {
		if err := s.Append(ctx, batch(fmt.Sprintf("b%03d", i), perAppend)); err != nil {
			t.Fatal(err)
		}
		maxWAL = max(maxWAL, walSize(t, path))
	}
	_, guarded, _, _ = cpStats(s)
	if err := s.CheckpointErr(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := open(t, path).Count(ctx, day())
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(appends * perAppend); c.Total != want {
		t.Errorf("%d rows after a reopen, want %d", c.Total, want)
	}
	return maxWAL / (pageSize + 24), guarded
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The background checkpointer copies a commit into the database file
// without the writer checkpointing (its automatic checkpoint off).
func TestCheckpointerCopiesCommits(t *testing.T) {
	ctx := context.Background()
	s, err := openWith(ctx, filepath.Join(t.TempDir(), "trace.db"),
		options{backstopPages: 0, restartPages: 1 << 30, cpInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, batch("c", 50)); err != nil {
		t.Fatal(err)
	}
	// wait for the checkpoint of that commit (the test's timeout is the limit)
	for {
		if _, _, log, copied := cpStats(s); log > 0 && copied == log {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.CheckpointErr(); err != nil {
		t.Error(err)
	}
}

// Close stops the checkpointer's goroutine and closes its connection.
func TestCloseStopsCheckpointer(t *testing.T) {
	ctx := context.Background()
	s, err := openWith(ctx, filepath.Join(t.TempDir(), "trace.db"),
		options{backstopPages: walBackstopPages, restartPages: 1, cpInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := s.Append(ctx, batch(fmt.Sprintf("x%d", i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.cp.done:
	default:
		t.Error("the checkpointer's goroutine runs after Close")
	}
	if err := s.cp.db.PingContext(ctx); err == nil {
		t.Error("the checkpointer's connection is open after Close")
	}
}

// The checkpointer's connection syncs at a checkpoint (Sync relies on it)
// and has a small page cache; the writer's automatic checkpoint is the
// backstop, past the checkpointer's restart threshold.
func TestCheckpointerSettings(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "trace.db"))
	ctx := context.Background()
	for _, c := range []struct {
		name, pragma string
		db           interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}
		want int
	}{
		{"checkpointer", "synchronous", s.cp.db, 1},
		{"checkpointer", "cache_size", s.cp.db, -cpCacheKiB},
		{"writer", "wal_autocheckpoint", s.wdb, walBackstopPages},
	} {
		var got int
		if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: %s %d, want %d", c.name, c.pragma, got, c.want)
		}
	}
	if walBackstopPages <= walRestartPages {
		t.Errorf("the writer's backstop (%d pages) is not past the restart threshold (%d)", walBackstopPages, walRestartPages)
	}
}
