package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// firstWindow is the span of a trace's first query: the newest day of its
// range (up to the cursor). Each further query covers twice the span of the
// one before, until the page is full or the range is done.
const firstWindow = day

// traceWindowed is a page of a trace read newest window first. Planning a
// query costs time per partition it may touch, whatever the rows it then
// reads (0.1 to 0.5 s over a 90-day range's 91 partitions and their
// indexes); the bounds of each window are parameters the planner sees as
// values (pgx's custom plans), so it prunes the partitions outside the
// window before planning: a page that fills from its newest day plans one
// or two partitions. Windows are disjoint in received time and read newest
// first, so their rows concatenate in trace order; the cursor's condition
// holds for every row of the older windows. A sparse trace that needs the
// whole range runs log2(days) queries that plan at most twice the
// partitions one query would. The addresses a mid-string wildcard matches
// are read once, before the first window (midCandidates), not by each
// window's query.
func (s *Store) traceWindowed(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, limit int) (mailflow.Page, error) {
	if err := q.Validate(); err != nil {
		return mailflow.Page{}, err
	}
	pos, ok, err := mailflow.DecodeCursor(cursor)
	if err != nil {
		return mailflow.Page{}, err
	}
	end := q.End
	if ok && pos.Received.Before(end) {
		end = pos.Received.Add(time.Nanosecond) // rows at the cursor's time may follow it
	}
	cands, err := s.midCandidates(ctx, q)
	if err != nil {
		return mailflow.Page{}, err
	}
	var page mailflow.Page
	for width := firstWindow; ; width *= 2 {
		start := q.Start
		if e := end.UnixNano(); e-width > q.Start.UnixNano() {
			// on a day boundary, so the window's oldest partition is whole
			start = time.Unix(0, dayOf(e-width)).UTC()
			if !start.After(q.Start) {
				start = q.Start
			}
		}
		wq := q
		wq.Start, wq.End = start, end
		rows, err := s.traceQuery(ctx, wq, cursor, limit+1-len(page.Rows), cands)
		if err != nil {
			return mailflow.Page{}, err
		}
		page.Rows = append(page.Rows, rows...)
		if len(page.Rows) > limit || !start.After(q.Start) {
			break
		}
		end = start
	}
	if len(page.Rows) > limit {
		page.Rows = page.Rows[:limit]
		page.Next = mailflow.NewCursor(page.Rows[limit-1])
	}
	return page, nil
}

// traceQuery runs one query of a trace: up to limit rows of q after cursor.
func (s *Store) traceQuery(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, limit int, cands map[string][]string) ([]mailflow.Row, error) {
	sqlText, args, err := traceSQLWith(q, cursor, limit, cands)
	if err != nil {
		return nil, err
	}
	rs, err := s.readPool().Query(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: trace: %w", err)
	}
	defer rs.Close()
	var out []mailflow.Row
	for rs.Next() {
		var r mailflow.Row
		if err := scanRow(rs, &r); err != nil {
			return nil, fmt.Errorf("postgres: trace: %w", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("postgres: trace: %w", err)
	}
	return out, nil
}
