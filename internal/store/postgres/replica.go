package postgres

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailtrace/mailtrace/internal/store"
)

var _ store.ReplicaLagger = (*Store)(nil)

// openReplica connects to a hot standby. Nothing is written to it (it
// refuses writes): the primary's migrations reach it by replication. It is
// not required to be a standby: a promoted replica, or a second name for
// the primary, serves reads all the same (with no lag).
func openReplica(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// readPool is where traces, counts, streams and events read: the replica
// when there is one.
func (s *Store) readPool() *pgxpool.Pool {
	if s.replica != nil {
		return s.replica
	}
	return s.pool
}

// DefaultMaxReplicaLag is Options.MaxReplicaLag's default.
const DefaultMaxReplicaLag = 30 * time.Second

// MaxReplicaLag is the lag above which a trace says it may miss the newest
// messages (store.ReplicaLagger).
func (s *Store) MaxReplicaLag() time.Duration {
	if s.opts.MaxReplicaLag > 0 {
		return s.opts.MaxReplicaLag
	}
	return DefaultMaxReplicaLag
}

// HasReplica reports whether reads go to a replica.
func (s *Store) HasReplica() bool { return s.replica != nil }

// ReplicaLag is how far the replica's data is behind the primary's: zero
// without a replica, on a server that is not a standby, or when the standby
// has replayed everything the primary has written (its last replayed WAL
// position is at or past the primary's insert position); otherwise the age
// of the last transaction it replayed (pg_last_xact_replay_timestamp). On a
// busy primary that is the replay delay; after a long idle spell on the
// primary it overstates the lag of the first moments of a new write, and it
// never understates it. A standby that has replayed no transaction since it
// started reports ErrLagUnknown.
func (s *Store) ReplicaLag(ctx context.Context) (time.Duration, error) {
	if s.replica == nil {
		return 0, nil
	}
	var primary string
	if err := s.pool.QueryRow(ctx, `SELECT CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_current_wal_insert_lsn()::text END`).Scan(&primary); err != nil {
		return 0, fmt.Errorf("postgres: replica lag: the primary: %w", err)
	}
	var (
		standby, caughtUp bool
		age               *float64
	)
	err := s.replica.QueryRow(ctx, `SELECT pg_is_in_recovery(),
			COALESCE(pg_last_wal_replay_lsn() >= NULLIF($1, '')::pg_lsn, false),
			extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`, primary).Scan(&standby, &caughtUp, &age)
	if err != nil {
		return 0, fmt.Errorf("postgres: replica lag: %w", err)
	}
	if !standby || caughtUp {
		return 0, nil
	}
	if age == nil {
		return 0, ErrLagUnknown
	}
	return max(0, time.Duration(*age*float64(time.Second))), nil
}

// ErrLagUnknown is ReplicaLag's error when the standby cannot tell.
var ErrLagUnknown = fmt.Errorf("postgres: the replica has replayed no transaction since it started: its lag is unknown")

// checkTrigram makes sure the addresses' trigram index of migration 00006
// exists when pg_trgm can be had (it may have been installed after the
// migration ran), and says so when it cannot: mid-string wildcards then
// read the whole addresses table for their candidates.
func (s *Store) checkTrigram(ctx context.Context) error {
	var have bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('addresses_trgm') IS NOT NULL`).Scan(&have); err != nil {
		return err
	}
	if have {
		return nil
	}
	// The migration's block again (it only raises notices when it cannot).
	block, err := trigramBlock()
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, block); err != nil {
		return fmt.Errorf("trigram index: %w", err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('addresses_trgm') IS NOT NULL`).Scan(&have); err != nil {
		return err
	}
	if !have {
		notice := "pg_trgm is not available to this database (install PostgreSQL's contrib modules, " +
			"or have a superuser run CREATE EXTENSION pg_trgm): address patterns with a wildcard before " +
			"their literal text and no `*@domain` form (`*7@d0*.example`) read every distinct address " +
			"instead of a trigram index; the index is built at the next start once the extension exists"
		logf := s.opts.Logf
		if logf == nil {
			logf = log.Printf
		}
		logf("postgres: %s", notice)
	}
	return nil
}

// trigramBlock is migration 00006's DO block (its only one in the Up part),
// read from the migration itself.
func trigramBlock() (string, error) {
	b, err := migrations.ReadFile("migrations/00006_addresses.sql")
	if err != nil {
		return "", err
	}
	_, rest, ok1 := strings.Cut(string(b), "-- +goose StatementBegin\n")
	block, _, ok2 := strings.Cut(rest, "-- +goose StatementEnd")
	if !ok1 || !ok2 {
		return "", fmt.Errorf("migration 00006 holds no statement block")
	}
	return block, nil
}
