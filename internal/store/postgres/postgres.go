// Package postgres is the PostgreSQL adapter of the trace store (pgx).
package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailtrace/mailtrace/internal/store"
)

// DefaultRetention is how long events are kept when Options.Retention is zero.
const DefaultRetention = 90 * 24 * time.Hour

// Options tune the adapter.
type Options struct {
	// Retention is how long messages are kept (by received time); 0 means DefaultRetention.
	Retention time.Duration
}

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	opts Options
}

var _ store.Store = (*Store)(nil)

var errTODO = errors.New("postgres: not implemented yet")

// Open connects to dsn and migrates the schema.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &Store{pool: pool, opts: opts}, nil
}

// Append stores events.
func (s *Store) Append(ctx context.Context, events []store.Event) error { return errTODO }

// Trace runs a trace.
func (s *Store) Trace(ctx context.Context, q store.Query, c store.Cursor, limit int) (store.Page, error) {
	return store.Page{}, errTODO
}

// Count counts matching rows per status.
func (s *Store) Count(ctx context.Context, q store.Query) (store.Counts, error) {
	return store.Counts{}, errTODO
}

// Events returns one message's events for one recipient.
func (s *Store) Events(ctx context.Context, id, rcpt string) ([]store.Event, error) {
	return nil, errTODO
}

// Prune removes everything received before cutoff.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) error { return errTODO }

// Ping checks the pool.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }
