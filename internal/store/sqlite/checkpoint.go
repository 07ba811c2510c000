package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"time"
)

// The background checkpointer copies the WAL into the database file on a
// connection of its own, beside the writer, so that an append does not do
// it in its commit (issue 15: 11% of an append's CPU, the preads and pwrites
// of _sqlite3WalCheckpoint, with the writer's wal_autocheckpoint at 64 MiB).
//
// It polls the WAL file (os.Stat, every cpPollInterval) and runs
// wal_checkpoint(PASSIVE) when the file changed, that is after each commit
// (or a few): a passive checkpoint takes no lock a writer or a reader waits
// for, and copies the frames committed when it starts, so it runs in
// parallel with the next append. Polling needs nothing of Append and costs
// an idle store one stat(2) per interval; the WAL's size cannot tell how
// much of it is yet to copy (SQLite reuses the file from its start after a
// restart, it does not shrink it), its change tells that something was
// committed, and a checkpoint with nothing to copy costs no I/O.
//
// A passive checkpoint never restarts the WAL: only a writer does, when it
// begins a transaction with the whole WAL copied and no reader in it. A
// writer that never pauses begins its next transaction while the
// checkpointer is still copying the previous commit, so the WAL would grow
// without bound. So when the WAL is about to hold walRestartPages (by the
// growth since the previous checkpoint), the checkpointer runs one more
// passive checkpoint holding the writer's mutex: no commit can come between
// it and the next append, which restarts the WAL (unless a reader still
// reads an older snapshot from it). The appends wait meanwhile for the copy
// of what was committed since the previous checkpoint, about one append's
// pages, once per walRestartPages (with AppendSQLite's appends, ~35 MB of
// WAL each, once per 4 appends), where the writer copied the whole WAL
// once per 64 MiB. The WAL stays under walRestartPages and the pages of
// the appends committed during a checkpoint: it peaked at 200 MB in
// AppendSQLite's 240 appends (100 MB before; 310 MB with walRestartPages
// at 256 MiB).
//
// The writer keeps wal_autocheckpoint, at walBackstopPages, should the
// background checkpoints fail. It is not the restart mechanism: a commit's
// automatic checkpoint gives up (SQLITE_BUSY) while the background one is
// copying; with it as the only restart, at 256 MiB, the WAL reached 420 MB.
const (
	cpPollInterval   = 100 * time.Millisecond
	walRestartPages  = 32768 // 128 MiB of 4 KiB pages
	walBackstopPages = 4 * walRestartPages
	cpCacheKiB       = 2 << 10
)

// checkpointer is the background checkpointer of one Store.
type checkpointer struct {
	db       *sql.DB // one connection
	wal      string  // path of the WAL file
	interval time.Duration
	restart  int         // pages in the WAL past which to checkpoint under wmu
	wmu      *sync.Mutex // the Store's writer mutex
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine has returned
	prevLog  int           // pages in the WAL at the previous checkpoint (of the goroutine)

	beforeGuarded func() // for tests: called before a checkpoint under wmu

	mu      sync.Mutex
	runs    int   // checkpoints run
	guarded int   // of which under wmu
	log     int   // pages in the WAL at the last checkpoint
	copied  int   // of which in the database file after it
	failed  int   // checkpoints that failed
	lastErr error // the latest failure
}

// startCheckpointer opens the checkpointer's connection and starts its
// goroutine.
func startCheckpointer(path string, interval time.Duration, restart int, wmu *sync.Mutex) (*checkpointer, error) {
	db, err := openOneConn(path, cpDSN(path))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, wal: path + "-wal", interval: interval, restart: restart, wmu: wmu,
		cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c, nil
}

// cpDSN is the checkpointer connection's DSN: a small page cache (a
// checkpoint reads WAL frames and writes database pages without it), and
// synchronous=NORMAL, under which a checkpoint syncs the WAL before copying
// it and the database file before recording the copy (Sync relies on it).
func cpDSN(path string) string {
	return connDSN(path, "", cpCacheKiB, 0)
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	// a timer, not a ticker: the writer's own checkpoint (the backstop)
	// finds the checkpointer idle for an interval after each checkpoint
	t := time.NewTimer(c.interval)
	defer t.Stop()
	var last os.FileInfo
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(c.wal)
		if err == nil && (last == nil || fi.Size() != last.Size() || !fi.ModTime().Equal(last.ModTime())) {
			last = fi
			c.checkpoint(ctx)
		}
		t.Reset(c.interval)
	}
}

// checkpoint runs a passive checkpoint, and a second one under wmu if the
// WAL will hold c.restart pages by the next one.
func (c *checkpointer) checkpoint(ctx context.Context) {
	log, err := c.passive(ctx, false)
	if err != nil || log < 0 { // log -1: another connection was checkpointing
		return
	}
	grown := log - c.prevLog // since the previous checkpoint
	if grown < 0 {
		grown = log // the WAL restarted meanwhile
	}
	c.prevLog = log
	if log+grown < c.restart {
		return
	}
	if c.beforeGuarded != nil {
		c.beforeGuarded()
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.passive(ctx, true); err == nil {
		c.prevLog = 0 // the next append restarts the WAL, unless a reader is in it
	}
}

// passive runs wal_checkpoint(PASSIVE), records its outcome and returns the
// number of pages in the WAL.
func (c *checkpointer) passive(ctx context.Context, guarded bool) (int, error) {
	var busy, log, copied int
	err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &copied)
	if ctx.Err() != nil {
		return 0, ctx.Err() // interrupted by Close
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failed++
		c.lastErr = err
		return 0, err
	}
	c.runs++
	if guarded {
		c.guarded++
	}
	c.log, c.copied = log, copied
	return log, nil
}

// stop ends the goroutine (interrupting a checkpoint under way) and closes
// the connection.
func (c *checkpointer) stop() error {
	c.cancel()
	<-c.done
	return c.db.Close()
}

// CheckpointErr reports the background checkpoints that failed, nil when
// none did: their number and the latest error. A failed checkpoint loses
// nothing (the pages stay in the WAL, and the writer's backstop checkpoints
// them); it only puts that work back on the appends.
func (s *Store) CheckpointErr() error {
	c := s.cp
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed == 0 {
		return nil
	}
	return fmt.Errorf("sqlite: %d background checkpoints of %s failed, the latest: %w", c.failed, c.wal, c.lastErr)
}
