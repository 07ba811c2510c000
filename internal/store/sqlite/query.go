package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// DefaultLimit is the page size Trace uses when asked for limit <= 0 (as the
// PostgreSQL adapter does).
const DefaultLimit = 1000

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// where translates a validated query into a WHERE clause over rows.
// selective reports that the sender or the recipient filter consists only of
// exact addresses and patterns with a literal prefix (`user@*`): few rows,
// best found through the address index and then sorted, rather than by
// walking the time range in order (SQLite's planner prefers the latter when
// a LIMIT is given).
func where(q *mailflow.Query) (clause string, args []any, selective bool) {
	var b strings.Builder
	args = []any{q.Start.UnixNano(), q.End.UnixNano()}
	b.WriteString("received >= ? AND received < ?")
	addrs := func(patterns []string, col, domainCol string) {
		if len(patterns) == 0 {
			return
		}
		b.WriteString(" AND (")
		addrOr(&b, &args, patterns, col, domainCol)
		b.WriteString(")")
	}
	addrs(q.Senders, "sender", "sender_domain")
	addrs(q.Recipients, "recipient", "recipient_domain")
	if q.Scope != nil {
		c, a := scopeCond(q.Scope, "")
		b.WriteString(" AND " + c)
		args = append(args, a...)
	}
	selective = prefixed(q.Senders) || prefixed(q.Recipients)
	if len(q.Statuses) > 0 {
		b.WriteString(" AND status IN (?" + strings.Repeat(",?", len(q.Statuses)-1) + ")")
		for _, s := range q.Statuses {
			args = append(args, string(s))
		}
	}
	if q.MessageID != "" {
		b.WriteString(" AND message_id_lc = ?")
		args = append(args, msgIDKey(q.MessageID))
	}
	if q.MessageTraceID != "" {
		b.WriteString(" AND mid = (SELECT mid FROM messages WHERE mtid = ?)")
		args = append(args, q.MessageTraceID)
	}
	if q.Direction != "" && q.Direction != mailflow.DirectionAll {
		b.WriteString(" AND direction = ?")
		args = append(args, string(q.Direction))
	}
	ipf := func(col string, p netip.Prefix) {
		if !p.IsValid() {
			return
		}
		lo, hi := prefixRange(p)
		b.WriteString(" AND " + col + " BETWEEN ? AND ?")
		args = append(args, lo, hi)
	}
	ipf("original_client_ipb", q.OriginalClientIP)
	ipf("from_ipb", q.FromIP)
	ipf("to_ipb", q.ToIP)
	if like := q.SubjectLike(); like != "" {
		b.WriteString(` AND subject_lc LIKE ? ESCAPE '\'`)
		args = append(args, like)
	}
	return b.String(), args, selective
}

// addrOr writes patterns as OR-ed conditions on col: an exact address is
// an equality, `*@domain` an equality on domainCol (both use the indexes),
// anything else a LIKE.
func addrOr(b *strings.Builder, args *[]any, patterns []string, col, domainCol string) {
	for i, p := range patterns {
		if i > 0 {
			b.WriteString(" OR ")
		}
		switch c := mailflow.ClassifyPattern(p); c.Kind {
		case mailflow.PatternExact:
			b.WriteString(col + " = ?")
			*args = append(*args, c.Value)
		case mailflow.PatternDomain:
			b.WriteString(domainCol + " = ?")
			*args = append(*args, c.Value)
		default:
			b.WriteString(col + ` LIKE ? ESCAPE '\'`)
			*args = append(*args, c.Value)
		}
	}
}

// scopeCond is the visibility condition of a non-nil scope (mailflow.InScope):
// the sender or the recipient matches one of the patterns; an empty scope
// is false. Columns are prefixed with alias (e.g. "r.") when given.
func scopeCond(scope []string, alias string) (string, []any) {
	if len(scope) == 0 {
		return "0", nil
	}
	var b strings.Builder
	var args []any
	b.WriteString("((")
	addrOr(&b, &args, scope, alias+"sender", alias+"sender_domain")
	b.WriteString(") OR (")
	addrOr(&b, &args, scope, alias+"recipient", alias+"recipient_domain")
	b.WriteString("))")
	return b.String(), args
}

// prefixed reports whether every pattern is selective on the address
// index (mailflow.Pattern.Selective).
func prefixed(patterns []string) bool {
	for _, p := range patterns {
		if !mailflow.ClassifyPattern(p).Selective() {
			return false
		}
	}
	return len(patterns) > 0
}

const rowColumns = `mtid, recipient, received, sender, subject, status, message_id, size,
	original_client_ip, from_ip, to_ip, direction, expanded_from, status_time, folder`

// rowGroupSQL and rowMemberSQL are mailflow.RowGroup and RowMember.
const (
	rowGroupSQL  = `COALESCE(NULLIF(expanded_from, ''), recipient)`
	rowMemberSQL = `(expanded_from <> '')`
)

// Trace returns a page of matching rows, newest received first, continuing
// after cursor (keyset pagination).
func (s *Store) Trace(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, limit int) (mailflow.Page, error) {
	if err := q.Validate(); err != nil {
		return mailflow.Page{}, err
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	pos, ok, err := mailflow.DecodeCursor(cursor)
	if err != nil {
		return mailflow.Page{}, err
	}
	w, args, selective := where(&q)
	// the rows of a message group-first (mailflow.CompareRows)
	order := "received DESC, mtid, " + rowGroupSQL + ", " + rowMemberSQL + ", recipient"
	if selective {
		order = "+" + order // see where
	}
	if ok {
		n := pos.Received.UnixNano()
		w += " AND received <= ? AND (received < ? OR (mtid, " + rowGroupSQL + ", " + rowMemberSQL + ", recipient) > (?, ?, ?, ?))"
		member := 0
		if pos.Member() {
			member = 1
		}
		args = append(args, n, n, pos.MessageTraceID, pos.Group(), member, pos.Recipient)
	}
	args = append(args, limit+1)
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+rowColumns+" FROM rows WHERE "+w+
		" ORDER BY "+order+" LIMIT ?", args...)
	if err != nil {
		return mailflow.Page{}, fmt.Errorf("sqlite: trace: %w", err)
	}
	defer rows.Close()
	var page mailflow.Page
	for rows.Next() {
		var r mailflow.Row
		var recv, stime int64
		var status, dir string
		if err := rows.Scan(&r.MessageTraceID, &r.Recipient, &recv, &r.Sender, &r.Subject, &status,
			&r.MessageID, &r.Size, &r.OriginalClientIP, &r.FromIP, &r.ToIP, &dir, &r.ExpandedFrom, &stime, &r.Folder); err != nil {
			return mailflow.Page{}, fmt.Errorf("sqlite: trace: %w", err)
		}
		r.Received, r.StatusTime = fromNanos(recv), fromNanos(stime)
		r.Status, r.Direction = mailflow.Status(status), mailflow.Direction(dir)
		page.Rows = append(page.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return mailflow.Page{}, fmt.Errorf("sqlite: trace: %w", err)
	}
	if len(page.Rows) > limit {
		page.Rows = page.Rows[:limit]
		page.Next = mailflow.NewCursor(page.Rows[limit-1])
	}
	return page, nil
}

// Count counts matching rows per status.
func (s *Store) Count(ctx context.Context, q mailflow.Query) (mailflow.Counts, error) {
	if err := q.Validate(); err != nil {
		return mailflow.Counts{}, err
	}
	w, args, _ := where(&q)
	rows, err := s.rdb.QueryContext(ctx, "SELECT status, count(*) FROM rows WHERE "+w+" GROUP BY status", args...)
	if err != nil {
		return mailflow.Counts{}, fmt.Errorf("sqlite: count: %w", err)
	}
	defer rows.Close()
	c := mailflow.Counts{ByStatus: map[mailflow.Status]int64{}}
	for _, st := range mailflow.AllStatuses {
		c.ByStatus[st] = 0
	}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return mailflow.Counts{}, fmt.Errorf("sqlite: count: %w", err)
		}
		c.ByStatus[mailflow.Status(st)] += n
		c.Total += n
	}
	if err := rows.Err(); err != nil {
		return mailflow.Counts{}, fmt.Errorf("sqlite: count: %w", err)
	}
	return c, nil
}

// Events returns the message-level events and the recipient's own, in time order.
func (s *Store) Events(ctx context.Context, messageTraceID, recipient string) ([]mailflow.Event, error) {
	return s.ScopedEvents(ctx, nil, messageTraceID, recipient)
}

// ScopedEvents is Events when the (message, recipient) row is visible in
// scope (any row of the message for an empty recipient), else nothing.
func (s *Store) ScopedEvents(ctx context.Context, scope []string, messageTraceID, recipient string) ([]mailflow.Event, error) {
	rcpt := mailflow.NormalizeAddress(recipient)
	// by the message's number: events_message and rows' unique index
	// lead with it (migration 00005)
	const mid = `(SELECT mid FROM messages WHERE mtid = ?)`
	sqlText := `SELECT body FROM events WHERE mid = ` + mid + ` AND recipient IN ('', ?)`
	args := []any{messageTraceID, rcpt}
	if scope != nil {
		c, a := scopeCond(scope, "r.")
		sqlText += ` AND EXISTS (SELECT 1 FROM rows r WHERE r.mid = ` + mid + ` AND (? = '' OR r.recipient = ?) AND ` + c + `)`
		args = append(append(args, messageTraceID, rcpt, rcpt), a...)
	}
	rows, err := s.rdb.QueryContext(ctx, sqlText+` ORDER BY time, seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	defer rows.Close()
	var out []mailflow.Event
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("sqlite: events: %w", err)
		}
		var e mailflow.Event
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return nil, fmt.Errorf("sqlite: events: stored event: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	return out, nil
}

// Prune removes the messages received before cutoff: their events and rows.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: prune: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	c := cutoff.UnixNano()
	for _, stmt := range []string{
		`DELETE FROM events WHERE mid IN (SELECT mid FROM messages WHERE received < ?)`,
		`DELETE FROM rows WHERE received < ?`,
		`DELETE FROM messages WHERE received < ?`,
	} {
		if _, err = tx.ExecContext(ctx, stmt, c); err != nil {
			return fmt.Errorf("sqlite: prune: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: prune: %w", err)
	}
	return nil
}
