package messagetrace

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// streamSpy is the real PostgreSQL store, counting its Stream and Trace calls.
type streamSpy struct {
	*postgres.Store
	streams, pages int
}

func (s *streamSpy) Stream(ctx context.Context, q mailflow.Query, c mailflow.Cursor, fn func(*mailflow.Row) error) error {
	s.streams++
	return s.Store.Stream(ctx, q, c, fn)
}

func (s *streamSpy) Trace(ctx context.Context, q mailflow.Query, c mailflow.Cursor, limit int) (mailflow.Page, error) {
	s.pages++
	return s.Store.Trace(ctx, q, c, limit)
}

// The tap an export puts on the trace store (for the counts and first rows
// in status) keeps PostgreSQL's one-query export, and counts the same rows
// as paging does.
func TestExportTapKeepsTheStoreStream(t *testing.T) {
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if err := storetest.SeedBench(ctx, pg, 3000); err != nil {
		t.Fatal(err)
	}
	q := mailflow.Query{Start: storetest.BenchEnd.Add(-90 * 24 * time.Hour), End: storetest.BenchEnd}
	want, err := pg.Count(ctx, q)
	if err != nil {
		t.Fatal(err)
	}

	spy := &streamSpy{Store: pg}
	st, tap := tapOf(spy, 7)
	if _, ok := st.(store.Streamer); !ok {
		t.Fatal("the tap over a Streamer is not a Streamer")
	}
	res, err := report.Write(ctx, io.Discard, st, q, report.Options{PageSize: 500}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spy.streams != 1 || spy.pages != 0 {
		t.Errorf("the report made %d Stream and %d Trace calls; want one stream", spy.streams, spy.pages)
	}
	if res.Rows != want.Total || tap.counts.Total != want.Total || len(tap.first) != 7 {
		t.Errorf("rows %d, tap counted %d and kept %d; store counts %d, want 7 kept", res.Rows, tap.counts.Total, len(tap.first), want.Total)
	}
	for s, n := range want.ByStatus {
		if tap.counts.ByStatus[s] != n {
			t.Errorf("tap counted %d %s, store %d", tap.counts.ByStatus[s], s, n)
		}
	}

	// Over a store that cannot stream, the tap pages, with the same counts.
	paged, ptap := tapOf(struct{ store.Store }{pg}, 7)
	if _, ok := paged.(store.Streamer); ok {
		t.Fatal("the tap over a store without Stream claims to stream")
	}
	if _, err := report.Write(ctx, io.Discard, paged, q, report.Options{PageSize: 500}, nil); err != nil {
		t.Fatal(err)
	}
	if ptap.counts.Total != want.Total || len(ptap.first) != 7 || ptap.first[6] != tap.first[6] {
		t.Errorf("paged tap: counted %d, kept %d; want %d and the same first rows", ptap.counts.Total, len(ptap.first), want.Total)
	}
}
