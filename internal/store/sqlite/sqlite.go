// Package sqlite is the embedded trace store: one SQLite file, pure Go
// (modernc.org/sqlite), schema migrated by goose on Open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/mailtrace/mailtrace/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite trace store. It is safe for concurrent use: appends are
// serialised (SQLite has one writer), traces run in parallel on a pool of
// read connections (WAL mode).
type Store struct {
	path string
	wdb  *sql.DB // the one writer connection
	rdb  *sql.DB // readers
	wmu  sync.Mutex
	st   *appendStmts // prepared on wdb at the first append (under wmu)
	cp   *checkpointer
}

var _ store.Store = (*Store)(nil)

// The page caches, in KiB, per connection. The allocator of modernc.org's
// C library gives each cached page (4 KiB and SQLite's header) a slot of
// 8 KiB, so a cache costs about twice its size in the process: with the
// writer's at 64 MiB, an event-dense ingest (test/ingestbench) peaked at
// 351 MiB of RSS, about 100 MiB of it the cache. The writer's cache holds what
// an append reuses (the inner pages of the indexes, their ends where
// keys arrive in time order; the leaves of the indexes keyed by trace
// IDs and addresses, 230 MiB on that log, fit in neither size): with
// 16 MiB it peaks at 249 MiB and uses the same CPU (115 s against 116 s;
// a page not cached is read from the OS's cache). Readers keep a large
// one: a trace reads many pages of one index range.
const (
	writerCacheKiB = 16 << 10
	readerCacheKiB = 64 << 10
)

// dsn is the DSN of the writer (txlock "immediate") or of a reader (txlock "").
func dsn(path string, txlock string) string {
	if txlock == "" {
		return connDSN(path, "", readerCacheKiB, 0)
	}
	return connDSN(path, txlock, writerCacheKiB, walBackstopPages)
}

// connDSN is the DSN of a connection with a page cache of cacheKiB; a
// txlock makes it the writer, which checkpoints once the WAL holds
// autocheckpoint pages (checkpoint.go: a backstop to the background
// checkpointer).
func connDSN(path string, txlock string, cacheKiB, autocheckpoint int) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "case_sensitive_like(1)")
	q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -cacheKiB))
	if txlock != "" {
		q.Set("_txlock", txlock)
		// The writer checkpointed once the WAL held 64 MiB (instead of
		// SQLite's default 4 MiB): a large append rewrites thousands of
		// index pages, and a page written by several appends between two
		// checkpoints is copied once (-11% of the time of a 1.5M-event
		// backfill). The background checkpointer now does that work; the
		// writer's is the backstop that restarts the WAL.
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", autocheckpoint))
	}
	return "file:" + path + "?" + q.Encode()
}

// options are what tests change of Open's settings.
type options struct {
	backstopPages int           // the writer's wal_autocheckpoint
	restartPages  int           // the WAL's pages past which the checkpointer has it restart
	cpInterval    time.Duration // how often the checkpointer looks at the WAL
}

var defaultOptions = options{backstopPages: walBackstopPages, restartPages: walRestartPages, cpInterval: cpPollInterval}

// Open opens (creating if needed, with its parent directory) the SQLite file
// at path and applies the schema migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	return openWith(ctx, path, defaultOptions)
}

func openWith(ctx context.Context, path string, o options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
		}
	}
	wdb, err := openOneConn(path, connDSN(path, "immediate", writerCacheKiB, o.backstopPages))
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", dsn(path, ""))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{path: path, wdb: wdb, rdb: rdb}
	if s.cp, err = startCheckpointer(path, o.cpInterval, o.restartPages, &s.wmu); err != nil {
		rdb.Close()
		wdb.Close()
		return nil, err
	}
	return s, nil
}

// openOneConn opens a pool of one connection kept for the Store's life:
// the writer's, and the checkpointer's.
func openOneConn(path, dsn string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", s.path, err)
	}
	return nil
}

// Sync makes every append that returned durable, whatever happens to the
// machine next. Appends commit with synchronous=NORMAL: a commit is written
// to the WAL file (safe from a crash of the process) and reaches the disk
// at the next checkpoint, which syncs the WAL file before copying its pages
// into the database file and syncs that after. A power loss before then may
// lose the latest commits. An ingester that deletes the lines behind what
// it has stored (its write-ahead log) calls Sync first: syncing the WAL
// file, then the database file, puts every commit on disk whether it is
// still in the WAL or already checkpointed (SQLite restarts the WAL only
// once all of it is in the synced database file). One sync each, every
// checkpoint of the ingester (10 s), instead of one per append.
//
// The background checkpointer (checkpoint.go) may copy WAL frames into the
// database file meanwhile; that changes nothing of the above. A checkpoint
// only reads the WAL file and writes the database file; its connection
// runs with synchronous=NORMAL, so it syncs the database file before it
// records frames as copied; and only a writer restarts the WAL (writes
// over its frames), when every frame is recorded as copied, so not during
// Sync, which holds wmu. A commit acknowledged before Sync is therefore in
// the WAL file when Sync syncs it, or was written over after a checkpoint
// had synced it into the database file; pages a running checkpoint writes
// into the database file are also in the synced WAL, whether or not the
// database file's sync includes them.
func (s *Store) Sync(ctx context.Context) error {
	s.wmu.Lock() // no commit, so no restart of the WAL and no automatic checkpoint, meanwhile
	defer s.wmu.Unlock()
	for _, p := range []string{s.path + "-wal", s.path} {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue // no WAL file: everything is in the database file
		}
		if err == nil {
			err = f.Sync()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("sqlite: sync %s: %w", p, err)
		}
	}
	return nil
}

// Close stops the background checkpointer and releases the connections.
func (s *Store) Close() error {
	var cerr error
	if s.cp != nil {
		cerr = s.cp.stop()
	}
	s.wmu.Lock()
	if s.st != nil {
		s.st.close()
		s.st = nil
	}
	s.wmu.Unlock()
	return errors.Join(cerr, s.rdb.Close(), s.wdb.Close())
}

// migrationCount is the number of embedded schema migrations (the schema version).
func migrationCount() (int, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return 0, err
	}
	return len(entries), nil
}
