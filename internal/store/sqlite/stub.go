package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/mailtrace/mailtrace/internal/store"
)

var errTODO = errors.New("sqlite: not implemented yet")

func (s *Store) Append(ctx context.Context, events []store.Event) error { return errTODO }
func (s *Store) Trace(ctx context.Context, q store.Query, c store.Cursor, limit int) (store.Page, error) {
	return store.Page{}, errTODO
}
func (s *Store) Count(ctx context.Context, q store.Query) (store.Counts, error) {
	return store.Counts{}, errTODO
}
func (s *Store) Events(ctx context.Context, mtid, recipient string) ([]store.Event, error) {
	return nil, errTODO
}
func (s *Store) Prune(ctx context.Context, cutoff time.Time) error { return errTODO }
