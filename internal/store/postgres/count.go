package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// hour is the rollups' granularity (migrations/00003_rollups.sql).
const hour = int64(time.Hour)

// rollupTable says which rollup answers q's counts exactly, or "" when
// none does and Count scans rows: the rollups know a row's hour, status,
// direction, sender domain and recipient domain, nothing else, so only
// statuses, a direction and `*@domain` patterns (filters, scope) can be
// answered from them. Without any domain pattern the smaller rollup_status
// does (tens of keys an hour); with one, rollup_domains through its domain
// indexes.
func rollupTable(q mailflow.Query) string {
	if q.MessageID != "" || q.MessageTraceID != "" || q.SubjectLike() != "" ||
		q.OriginalClientIP.IsValid() || q.FromIP.IsValid() || q.ToIP.IsValid() ||
		q.Start.UnixNano() < 0 {
		return ""
	}
	domains := false
	for _, ps := range [][]string{q.Senders, q.Recipients, q.Scope} {
		for _, p := range ps {
			if mailflow.ClassifyPattern(p).Kind != mailflow.PatternDomain {
				return ""
			}
			domains = true
		}
	}
	if domains || (q.Scope != nil && len(q.Scope) == 0) {
		return "rollup_domains"
	}
	return "rollup_status"
}

// rollupSpan is the whole hours inside [start, end): [from, to), empty
// (from >= to) when the range holds no whole hour.
func rollupSpan(start, end int64) (from, to int64) {
	from = start - start%hour
	if from < start {
		from += hour
	}
	return from, end - end%hour
}

// countRollup counts q from table (rollupTable) over the whole hours of
// its range, and from rows over the partial hours at its ends. ok is false
// when the range holds no whole hour (the caller scans).
func (s *Store) countRollup(ctx context.Context, q mailflow.Query, table string) (c mailflow.Counts, ok bool, err error) {
	from, to := rollupSpan(q.Start.UnixNano(), q.End.UnixNano())
	if from >= to {
		return mailflow.Counts{}, false, nil
	}
	w := &where{}
	parts := []string{rollupPart(w, q, table, from, to)}
	// The partial hours at the ends, from rows, with the same conditions.
	for _, edge := range [][2]int64{{q.Start.UnixNano(), from}, {to, q.End.UnixNano()}} {
		if edge[0] >= edge[1] {
			continue
		}
		eq := q
		eq.Start, eq.End = time.Unix(0, edge[0]), time.Unix(0, edge[1])
		ew := buildWhere(eq)
		parts = append(parts, `SELECT status, count(*) AS n FROM rows WHERE `+
			strings.Join(renumber(ew.conds, len(w.args)), " AND ")+` GROUP BY status`)
		w.args = append(w.args, ew.args...)
	}
	sqlText := `SELECT status, sum(n)::bigint FROM (` + strings.Join(parts, " UNION ALL ") +
		`) p GROUP BY status HAVING sum(n) <> 0`
	c, err = s.countQuery(ctx, sqlText, w.args)
	return c, err == nil, err
}

// rollupPart is the rollup's share of q's count over the hours [from, to).
func rollupPart(w *where, q mailflow.Query, table string, from, to int64) string {
	conds := []string{"hour >= " + w.arg(from), "hour < " + w.arg(to)}
	dom := func(col string, patterns []string) string {
		var vals []string
		for _, p := range patterns {
			vals = append(vals, mailflow.ClassifyPattern(p).Value)
		}
		return col + " = ANY(" + w.arg(vals) + ")"
	}
	if len(q.Senders) > 0 {
		conds = append(conds, dom("sender_domain", q.Senders))
	}
	if len(q.Recipients) > 0 {
		conds = append(conds, dom("recipient_domain", q.Recipients))
	}
	if q.Scope != nil {
		if len(q.Scope) == 0 {
			conds = append(conds, "false")
		} else {
			conds = append(conds, "("+dom("sender_domain", q.Scope)+" OR "+dom("recipient_domain", q.Scope)+")")
		}
	}
	if len(q.Statuses) > 0 {
		ss := make([]string, len(q.Statuses))
		for i, st := range q.Statuses {
			ss[i] = string(st)
		}
		conds = append(conds, "status = ANY("+w.arg(ss)+")")
	}
	if q.Direction != "" && q.Direction != mailflow.DirectionAll {
		conds = append(conds, "direction = "+w.arg(string(q.Direction)))
	}
	return `SELECT status, sum(n) AS n FROM ` + table + ` WHERE ` + strings.Join(conds, " AND ") + ` GROUP BY status`
}

// renumber shifts the $n placeholders of conds by off.
func renumber(conds []string, off int) []string {
	if off == 0 {
		return conds
	}
	out := make([]string, len(conds))
	for i, c := range conds {
		var b strings.Builder
		for j := 0; j < len(c); j++ {
			if c[j] != '$' {
				b.WriteByte(c[j])
				continue
			}
			k := j + 1
			n := 0
			for k < len(c) && c[k] >= '0' && c[k] <= '9' {
				n = n*10 + int(c[k]-'0')
				k++
			}
			if k == j+1 {
				b.WriteByte('$')
				continue
			}
			fmt.Fprintf(&b, "$%d", n+off)
			j = k - 1
		}
		out[i] = b.String()
	}
	return out
}

// countQuery runs a query of (status, count) rows into Counts.
func (s *Store) countQuery(ctx context.Context, sqlText string, args []any) (mailflow.Counts, error) {
	rs, err := s.readPool().Query(ctx, sqlText, args...)
	if err != nil {
		return mailflow.Counts{}, fmt.Errorf("postgres: count: %w", err)
	}
	defer rs.Close()
	c := mailflow.Counts{ByStatus: map[mailflow.Status]int64{}}
	for rs.Next() {
		var st string
		var n int64
		if err := rs.Scan(&st, &n); err != nil {
			return mailflow.Counts{}, fmt.Errorf("postgres: count: %w", err)
		}
		c.ByStatus[mailflow.Status(st)] = n
		c.Total += n
	}
	if err := rs.Err(); err != nil {
		return mailflow.Counts{}, fmt.Errorf("postgres: count: %w", err)
	}
	return c, nil
}

var _ store.StatusTotaler = (*Store)(nil)

// StatusTotals is the rows received in the whole hours of [start, end) per
// status and direction, from rollup_status (the hour holding start counts
// when start is inside it; the hour holding end does not).
func (s *Store) StatusTotals(ctx context.Context, start, end time.Time) ([]store.StatusTotal, error) {
	from, to := start.UnixNano(), end.UnixNano()
	from -= from % hour
	rs, err := s.readPool().Query(ctx, `SELECT status, direction, sum(n)::bigint FROM rollup_status
		WHERE hour >= $1 AND hour < $2 GROUP BY status, direction HAVING sum(n) <> 0 ORDER BY 1, 2`, from, to)
	if err != nil {
		return nil, fmt.Errorf("postgres: totals: %w", err)
	}
	defer rs.Close()
	var out []store.StatusTotal
	for rs.Next() {
		var t store.StatusTotal
		var st, dir string
		if err := rs.Scan(&st, &dir, &t.Rows); err != nil {
			return nil, fmt.Errorf("postgres: totals: %w", err)
		}
		t.Status, t.Direction = mailflow.Status(st), mailflow.Direction(dir)
		out = append(out, t)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("postgres: totals: %w", err)
	}
	return out, nil
}
