// Package postgres is the PostgreSQL adapter of the trace store, on pgx.
//
// Schema (migrations/, applied by goose on Open under a Postgres session
// lock, so two processes may Open at once):
//
//   - messages: one row per message trace id, unpartitioned. Its received
//     time decides where the message's rows and events live.
//   - rows and events: PARTITION BY RANGE on the message's received time
//     (unix nanoseconds), one partition per UTC day, created on demand before
//     an append needs it (under an advisory lock, cached per Store). There is
//     no default partition. Because rows and events are placed by the
//     message's received time, dropping a day's partitions removes whole
//     messages; when an earlier event makes a message's received time move,
//     its rows and events move with it inside the same transaction.
//
// Retention: Prune(cutoff) drops the daily partitions entirely before cutoff
// and deletes what remains before cutoff in the boundary day. Nothing prunes
// on its own: retention has one owner, the manager's --retention, whose loop
// calls Prune (as it does for SQLite).
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultLimit is the page size Trace uses when asked for limit <= 0.
const DefaultLimit = 1000

// partitionLockID is the advisory lock that serialises partition creation and dropping.
const partitionLockID = 0x6d61696c74726163 // "mailtrac"

// Options tune the adapter.
type Options struct {
	// MaxConns caps the connection pool; 0 means pgxpool's default.
	MaxConns int32
	// ReplicaDSN, when set, names a hot standby of the server: traces,
	// counts, streams and events read from it; appends, retention and
	// migrations stay on the primary (replica.go).
	ReplicaDSN string
	// MaxReplicaLag is the replica lag above which a trace says it may miss
	// the newest messages (DefaultMaxReplicaLag when 0).
	MaxReplicaLag time.Duration
	// Logf receives what Open has to say that is not an error (pg_trgm
	// missing, say); nil writes it to the standard logger.
	Logf func(format string, args ...any)
}

// Store is a store.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	replica *pgxpool.Pool // nil without Options.ReplicaDSN
	opts    Options

	mu    sync.Mutex
	parts map[int64]bool // day start (unix ns) -> partitions exist

	addrs knownAddresses // append.go
}

var _ store.Store = (*Store)(nil)

// Open connects to dsn (a libpq URL or keyword/value string), applies the
// schema migrations and returns the store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, opts: opts, parts: map[int64]bool{}}
	if err := s.checkTrigram(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.ReplicaDSN != "" {
		if s.replica, err = openReplica(ctx, opts.ReplicaDSN, opts.MaxConns); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: replica: %w", err)
		}
	}
	return s, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Ping checks that the pool reaches the server.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	if s.replica != nil {
		if err := s.replica.Ping(ctx); err != nil {
			return fmt.Errorf("postgres: ping the replica: %w", err)
		}
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	if s.replica != nil {
		s.replica.Close()
	}
	return nil
}

// --- outcomes ---------------------------------------------------------------

// ranks orders the status-deciding statuses as Outcome.Supersedes does at
// equal times (derived from it, so the SQL cannot drift from the reference).
var ranks, statusByRank = func() (map[mailflow.Status]int, []mailflow.Status) {
	var deciding []mailflow.Status
	for _, s := range mailflow.AllStatuses {
		if s != mailflow.StatusGettingStatus {
			deciding = append(deciding, s)
		}
	}
	t := time.Unix(0, 0)
	r := map[mailflow.Status]int{}
	for _, a := range deciding {
		for _, b := range deciding {
			if a != b && (mailflow.Outcome{Status: a, Time: t}).Supersedes(mailflow.Outcome{Status: b, Time: t}) {
				r[a]++
			}
		}
	}
	by := make([]mailflow.Status, len(deciding))
	for s, n := range r {
		by[n] = s
	}
	for _, s := range deciding {
		if _, ok := r[s]; !ok {
			r[s] = 0
			by[0] = s
		}
	}
	return r, by
}()

// --- partitions -------------------------------------------------------------

const day = int64(24 * time.Hour)

func dayOf(ns int64) int64 {
	d := ns - ns%day
	if ns < 0 && ns%day != 0 {
		d -= day
	}
	return d
}

func partName(table string, dayNS int64) string {
	return table + "_p" + time.Unix(0, dayNS).UTC().Format("20060102")
}

// ensurePartitions creates the daily partitions of rows and events for days
// (unix ns of day starts) that this Store has not seen yet.
func (s *Store) ensurePartitions(ctx context.Context, days map[int64]bool) error {
	s.mu.Lock()
	var missing []int64
	for d := range days {
		if !s.parts[d] {
			missing = append(missing, d)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(partitionLockID)); err != nil {
			return err
		}
		// Look before creating: CREATE TABLE ... PARTITION OF locks the
		// parent exclusively even when the partition exists.
		existing := map[string]bool{}
		rs, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent IN ('rows'::regclass, 'events'::regclass)`)
		if err != nil {
			return err
		}
		for rs.Next() {
			var n string
			if err := rs.Scan(&n); err != nil {
				return err
			}
			existing[n] = true
		}
		if err := rs.Err(); err != nil {
			return err
		}
		for _, d := range missing {
			for _, t := range []string{"rows", "events"} {
				n := partName(t, d)
				if existing[n] {
					continue
				}
				q := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM (%d) TO (%d)`,
					pgx.Identifier{n}.Sanitize(), t, d, d+day)
				if t == "rows" {
					q += rowsStorage
				}
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("create partition %s: %w", n, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: partitions: %w", err)
	}
	s.mu.Lock()
	for _, d := range missing {
		s.parts[d] = true
	}
	s.mu.Unlock()
	return nil
}

// rowsStorage leaves room on each page of a rows partition for the new
// versions of its rows: a status that changes (Pending, then Delivered)
// changes no indexed column, so its update is a heap-only tuple on the
// same page instead of a new entry in each of the table's indexes
// (migration 00004 sets the partitions created before).
const rowsStorage = ` WITH (fillfactor = 80)`

func (s *Store) forgetPartitions() {
	s.mu.Lock()
	s.parts = map[int64]bool{}
	s.mu.Unlock()
}

// --- queries ----------------------------------------------------------------

// connectionLost reports whether err is a failure to talk to the server
// while ctx is still live: a network error, or the server ending the session
// (SQLSTATE classes 08 and 57: a restart). The pool may hold connections the
// server closed when it restarted.
func connectionLost(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, mailflow.ErrInvalidQuery) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57")
	}
	return true
}

// retryRead runs a read again (a few times: each stale pooled connection
// fails once) when its connection was lost.
func (s *Store) retryRead(ctx context.Context, f func() error) error {
	err := f()
	for i := 0; i < 3 && connectionLost(ctx, err); i++ {
		err = f()
	}
	return err
}

const rowCols = `received, sender, recipient, subject, status, message_id, trace_id, size,
	original_client_ip, from_ip, to_ip, direction, expanded_from, status_time, folder`

type where struct {
	conds []string
	args  []any
	// the addresses that mid-string wildcards match, when read already
	// (midCandidates, by midKey); nil: each query reads them itself
	cands map[string][]string
}

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

func (w *where) add(c string) { w.conds = append(w.conds, c) }

func addressConds(w *where, col, domainCol string, role byte, patterns []string) {
	if len(patterns) == 0 {
		return
	}
	w.add("(" + addressOr(w, col, domainCol, role, patterns) + ")")
}

// scopeCond is the visibility condition of a non-nil scope (mailflow.InScope):
// the sender or the recipient matches one of the patterns, each side using
// its address and domain indexes; an empty scope is false.
func scopeCond(w *where, alias string, scope []string) string {
	if len(scope) == 0 {
		return "false"
	}
	return "((" + addressOr(w, alias+"sender", alias+"sender_domain", roleSender, scope) + ") OR (" +
		addressOr(w, alias+"recipient", alias+"recipient_domain", roleRecipient, scope) + "))"
}

// The roles of the addresses table (migration 00006): which column of rows
// an address was seen in.
const (
	roleSender    = 's'
	roleRecipient = 'r'
)

// addressOr is patterns as OR-ed conditions on col: exact addresses as
// col = ANY, `*@domain` as domainCol = ANY, a LIKE with a usable literal
// prefix (mailflow.Pattern.Selective) as LIKE, which col's btree index
// answers as a range. The other LIKEs (mid-string wildcards, `*7@d0*`) find
// their candidates among the distinct addresses of role (a table far
// smaller than rows, with a trigram index when pg_trgm is there), and col's
// btree index finds the rows of those: exactly the rows whose col matches,
// since every value of col is in the addresses table.
func addressOr(w *where, col, domainCol string, role byte, patterns []string) string {
	var eq, dom, like, mid []string
	for _, p := range patterns {
		switch c := mailflow.ClassifyPattern(p); {
		case c.Kind == mailflow.PatternExact:
			eq = append(eq, c.Value)
		case c.Kind == mailflow.PatternDomain:
			dom = append(dom, c.Value)
		case c.Selective():
			like = append(like, c.Value)
		default: // what midPatterns returns
			mid = append(mid, c.Value)
		}
	}
	var ors []string
	if len(eq) > 0 {
		ors = append(ors, col+" = ANY("+w.arg(eq)+")")
	}
	if len(dom) > 0 {
		ors = append(ors, domainCol+" = ANY("+w.arg(dom)+")")
	}
	for _, l := range like {
		ors = append(ors, col+" LIKE "+w.arg(l)+` ESCAPE '\'`)
	}
	if len(mid) > 0 {
		if c, ok := w.cands[midKey(role, mid)]; ok && len(c) > maxCandidates {
			// a pattern that matches most addresses (`*e*`): probing the
			// index for each would cost more than reading the rows
			for _, l := range mid {
				ors = append(ors, col+" LIKE "+w.arg(l)+` ESCAPE '\'`)
			}
		} else if ok {
			// read once for the queries of a trace: as a subquery still,
			// so that the planner estimates it as it does the one below
			// (a few addresses), not element by element
			ors = append(ors, col+" = ANY(ARRAY(SELECT unnest("+w.arg(c)+"::text[])))")
		} else {
			ors = append(ors, col+" = ANY(ARRAY("+candidatesSQL(w, role, mid)+"))")
		}
	}
	return strings.Join(ors, " OR ")
}

// maxCandidates is the most addresses a mid-string wildcard's candidates
// are probed for in the address index, per day of rows; a pattern that
// matches more (`*e*` matches nearly every address) is compared with the
// rows' addresses instead, as before migration 00006 when its trigram
// index had nothing to narrow. At 1M rows over 90 days, `*e*` (25,000
// senders) over 10 days counted in 2.6 to 3.8 s by probes, 0.2 to 0.5 s
// by reading the rows; its first 500 rows took 200 ms against 0.5 ms.
const maxCandidates = 1000

// midPatterns is the LIKE patterns of patterns that are mid-string
// wildcards: a LIKE without a usable literal prefix.
func midPatterns(patterns []string) []string {
	var mid []string
	for _, p := range patterns {
		if c := mailflow.ClassifyPattern(p); c.Kind == mailflow.PatternLike && !c.Selective() {
			mid = append(mid, c.Value)
		}
	}
	return mid
}

// candidatesSQL selects the addresses of role that match one of likes.
func candidatesSQL(w *where, role byte, likes []string) string {
	conds := make([]string, len(likes))
	for i, l := range likes {
		conds[i] = "a.address LIKE " + w.arg(l) + ` ESCAPE '\'`
	}
	return `SELECT a.address FROM addresses a WHERE a.role = '` + string(rune(role)) + `' AND (` + strings.Join(conds, " OR ") + `)`
}

func midKey(role byte, likes []string) string {
	return string(rune(role)) + "\x00" + strings.Join(likes, "\x00")
}

// midCandidates reads, in one round trip, the addresses that q's
// mid-string wildcards match (nil when it has none), for a trace's
// queries to share (a trace runs a query per window, and each would
// otherwise search the addresses' trigram index again), and to tell
// patterns that match more than maxCandidates addresses.
func (s *Store) midCandidates(ctx context.Context, q mailflow.Query) (map[string][]string, error) {
	type group struct {
		role byte
		mid  []string
	}
	var gs []group
	for _, g := range []struct {
		role     byte
		patterns []string
	}{{roleSender, q.Senders}, {roleRecipient, q.Recipients}, {roleSender, q.Scope}, {roleRecipient, q.Scope}} {
		if mid := midPatterns(g.patterns); len(mid) > 0 {
			gs = append(gs, group{g.role, mid})
		}
	}
	if len(gs) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	for _, g := range gs {
		w := &where{}
		// no more than one past maxCandidates: a pattern that matches most
		// addresses stops early, and its rows are compared instead
		b.Queue(`SELECT coalesce(array_agg(address), '{}') FROM (`+candidatesSQL(w, g.role, g.mid)+
			fmt.Sprintf(` LIMIT %d) c`, maxCandidates+1), w.args...)
	}
	br := s.readPool().SendBatch(ctx, b)
	defer br.Close()
	cands := map[string][]string{}
	for _, g := range gs {
		var c []string
		if err := br.QueryRow().Scan(&c); err != nil {
			return nil, fmt.Errorf("postgres: trace: %w", err)
		}
		cands[midKey(g.role, g.mid)] = c
	}
	return cands, br.Close()
}

func buildWhere(q mailflow.Query) *where { return buildWhereWith(q, nil) }

// buildWhereWith is buildWhere with the candidates of q's mid-string
// wildcards read already (midCandidates).
func buildWhereWith(q mailflow.Query, cands map[string][]string) *where {
	w := &where{cands: cands}
	w.add("received >= " + w.arg(q.Start.UnixNano()))
	w.add("received < " + w.arg(q.End.UnixNano()))
	addressConds(w, "sender", "sender_domain", roleSender, q.Senders)
	addressConds(w, "recipient", "recipient_domain", roleRecipient, q.Recipients)
	if q.Scope != nil {
		w.add(scopeCond(w, "", q.Scope))
	}
	if len(q.Statuses) > 0 {
		ss := make([]string, len(q.Statuses))
		for i, s := range q.Statuses {
			ss[i] = string(s)
		}
		w.add("status = ANY(" + w.arg(ss) + ")")
	}
	if q.MessageID != "" {
		w.add("message_id_lc = " + w.arg(strings.ToLower(mailflow.NormalizeMessageID(q.MessageID))))
	}
	if q.MessageTraceID != "" {
		w.add("trace_id = " + w.arg(q.MessageTraceID))
	}
	if q.Direction != "" && q.Direction != mailflow.DirectionAll {
		w.add("direction = " + w.arg(string(q.Direction)))
	}
	for _, f := range []struct {
		col string
		p   netip.Prefix
	}{{"original_client_inet", q.OriginalClientIP}, {"from_inet", q.FromIP}, {"to_inet", q.ToIP}} {
		if f.p.IsValid() {
			w.add(f.col + " <<= " + w.arg(f.p.Masked().String()) + "::cidr")
		}
	}
	if like := q.SubjectLike(); like != "" {
		w.add("subject_lc LIKE " + w.arg(like) + ` ESCAPE '\'`)
	}
	return w
}

// Trace returns up to limit rows matching q after cursor (keyset
// pagination), newest received first, ties by message trace id, the rows
// of one message group-first (mailflow.CompareRows).
func (s *Store) Trace(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, limit int) (mailflow.Page, error) {
	var p mailflow.Page
	err := s.retryRead(ctx, func() (err error) { p, err = s.trace(ctx, q, cursor, limit); return err })
	return p, err
}

func (s *Store) trace(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, limit int) (mailflow.Page, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return s.traceWindowed(ctx, q, cursor, limit)
}

// rowGroupSQL and rowMemberSQL are mailflow.RowGroup and RowMember: the
// rows of a message group-first (a group's row, then its members').
const (
	rowGroupSQL  = `COALESCE(NULLIF(expanded_from, ''), recipient)`
	rowMemberSQL = `(expanded_from <> '')`
)

// traceSQL is the query of the rows matching q after cursor, in trace
// order, at most limit of them (every one when limit is zero).
func traceSQL(q mailflow.Query, cursor mailflow.Cursor, limit int) (string, []any, error) {
	return traceSQLWith(q, cursor, limit, nil)
}

// traceSQLWith is traceSQL with the candidates of q's mid-string wildcards
// read already (midCandidates).
func traceSQLWith(q mailflow.Query, cursor mailflow.Cursor, limit int, cands map[string][]string) (string, []any, error) {
	if err := q.Validate(); err != nil {
		return "", nil, err
	}
	pos, ok, err := mailflow.DecodeCursor(cursor)
	if err != nil {
		return "", nil, err
	}
	w := buildWhereWith(q, cands)
	if ok {
		r := w.arg(pos.Received.UnixNano())
		m := w.arg(pos.MessageTraceID)
		g, b, c := w.arg(pos.Group()), w.arg(pos.Member()), w.arg(pos.Recipient)
		w.add(fmt.Sprintf("received <= %s AND (received < %s OR (received = %s AND (trace_id > %s OR (trace_id = %s AND (%s, %s, recipient) > (%s, %s, %s)))))",
			r, r, r, m, m, rowGroupSQL, rowMemberSQL, g, b, c))
	}
	sqlText := `SELECT ` + rowCols + ` FROM rows WHERE ` + strings.Join(w.conds, " AND ") +
		` ORDER BY received DESC, trace_id, ` + rowGroupSQL + `, ` + rowMemberSQL + `, recipient`
	if limit > 0 {
		sqlText += fmt.Sprintf(` LIMIT %d`, limit)
	}
	return sqlText, w.args, nil
}

// scanRow reads one row of rowCols into r.
func scanRow(rs pgx.Rows, r *mailflow.Row) error {
	var received int64
	var statusTime *int64
	var status, direction string
	if err := rs.Scan(&received, &r.Sender, &r.Recipient, &r.Subject, &status, &r.MessageID, &r.MessageTraceID, &r.Size,
		&r.OriginalClientIP, &r.FromIP, &r.ToIP, &direction, &r.ExpandedFrom, &statusTime, &r.Folder); err != nil {
		return err
	}
	r.Received = time.Unix(0, received).UTC()
	r.Status = mailflow.Status(status)
	r.Direction = mailflow.Direction(direction)
	r.StatusTime = time.Time{}
	if statusTime != nil {
		r.StatusTime = time.Unix(0, *statusTime).UTC()
	}
	return nil
}

// Stream sends every row matching q after cursor to fn from one query: the
// server sends rows as fn consumes them (TCP flow control holds it back), so
// memory is one row whatever the size of the result, and the query is
// planned and its partitions opened once instead of once per page. When the
// connection is lost mid-stream (a server restart, a network failure), the
// stream resumes after the last row fn was given, on a new connection, a
// few times without progress before giving up: fn sees every row once.
func (s *Store) Stream(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, fn func(*mailflow.Row) error) error {
	var (
		last   mailflow.Row // the keys of the last row fn was given
		fnErr  error
		failed int
	)
	for {
		progressed := false
		err := s.stream(ctx, q, cursor, func(r *mailflow.Row) error {
			if err := fn(r); err != nil {
				fnErr = err
				return err
			}
			last.Received, last.MessageTraceID, last.Recipient, last.ExpandedFrom = r.Received, r.MessageTraceID, r.Recipient, r.ExpandedFrom
			progressed = true
			return nil
		})
		if err == nil || fnErr != nil {
			return err
		}
		if !connectionLost(ctx, err) {
			return fmt.Errorf("postgres: trace: %w", err)
		}
		if progressed {
			// resume after the last row given
			failed, cursor = 0, mailflow.NewCursor(last)
		}
		if failed++; failed > 3 {
			return fmt.Errorf("postgres: trace: %w", err)
		}
	}
}

func (s *Store) stream(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, fn func(*mailflow.Row) error) error {
	if err := q.Validate(); err != nil {
		return err
	}
	cands, err := s.midCandidates(ctx, q)
	if err != nil {
		return err
	}
	sqlText, args, err := traceSQLWith(q, cursor, 0, cands)
	if err != nil {
		return err
	}
	// Canceled before Close when fn stops the stream early, so that Close
	// ends the query instead of reading the rest of the result.
	ctx, cancel := context.WithCancel(ctx)
	rs, err := s.readPool().Query(ctx, sqlText, args...)
	if err != nil {
		cancel()
		return err
	}
	defer rs.Close()
	defer cancel()
	var r mailflow.Row
	for rs.Next() {
		if err := scanRow(rs, &r); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rs.Err()
}

// Count counts the rows matching q per status.
func (s *Store) Count(ctx context.Context, q mailflow.Query) (mailflow.Counts, error) {
	var c mailflow.Counts
	err := s.retryRead(ctx, func() (err error) { c, err = s.count(ctx, q); return err })
	return c, err
}

func (s *Store) count(ctx context.Context, q mailflow.Query) (mailflow.Counts, error) {
	if err := q.Validate(); err != nil {
		return mailflow.Counts{}, err
	}
	if table := rollupTable(q); table != "" {
		if c, ok, err := s.countRollup(ctx, q, table); ok || err != nil {
			return c, err
		}
	}
	cands, err := s.midCandidates(ctx, q)
	if err != nil {
		return mailflow.Counts{}, err
	}
	w := buildWhereWith(q, cands)
	return s.countQuery(ctx, `SELECT status, count(*) FROM rows WHERE `+strings.Join(w.conds, " AND ")+` GROUP BY status`, w.args)
}

// Events returns one message's events for one recipient in time order: the
// message-level events and that recipient's own.
func (s *Store) Events(ctx context.Context, messageTraceID, recipient string) ([]mailflow.Event, error) {
	return s.ScopedEvents(ctx, nil, messageTraceID, recipient)
}

// ScopedEvents is Events when the (message, recipient) row is visible in
// scope (any row of the message for an empty recipient), else nothing.
func (s *Store) ScopedEvents(ctx context.Context, scope []string, messageTraceID, recipient string) ([]mailflow.Event, error) {
	var evs []mailflow.Event
	err := s.retryRead(ctx, func() (err error) { evs, err = s.events(ctx, scope, messageTraceID, recipient); return err })
	return evs, err
}

func (s *Store) events(ctx context.Context, scope []string, messageTraceID, recipient string) ([]mailflow.Event, error) {
	w := &where{}
	mt, rc := w.arg(messageTraceID), w.arg(mailflow.NormalizeAddress(recipient))
	sqlText := `SELECT e.body FROM events e JOIN messages m ON m.trace_id = e.trace_id AND e.received = m.received
		WHERE e.trace_id = ` + mt + ` AND e.recipient IN ('', ` + rc + `)`
	if scope != nil {
		sqlText += ` AND EXISTS (SELECT 1 FROM rows r WHERE r.trace_id = e.trace_id AND r.received = m.received AND (` +
			rc + ` = '' OR r.recipient = ` + rc + `) AND ` + scopeCond(w, "r.", scope) + `)`
	}
	rs, err := s.readPool().Query(ctx, sqlText+` ORDER BY e.time, e.seq`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	defer rs.Close()
	var out []mailflow.Event
	for rs.Next() {
		var body string
		if err := rs.Scan(&body); err != nil {
			return nil, fmt.Errorf("postgres: events: %w", err)
		}
		var e mailflow.Event
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return nil, fmt.Errorf("postgres: events: %w", err)
		}
		out = append(out, e)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	return out, nil
}

// --- retention --------------------------------------------------------------

// Prune removes every message received before cutoff: the daily partitions
// that end at or before cutoff are dropped (instant, whatever their size),
// and what remains before cutoff in the boundary day is deleted.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) error {
	c := cutoff.UnixNano()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(partitionLockID)); err != nil {
			return err
		}
		rs, err := tx.Query(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent IN ('rows'::regclass, 'events'::regclass)`)
		if err != nil {
			return err
		}
		var drop []string
		for rs.Next() {
			var name, bound string
			if err := rs.Scan(&name, &bound); err != nil {
				return err
			}
			var from, to int64
			if _, err := fmt.Sscanf(bound, "FOR VALUES FROM ('%d') TO ('%d')", &from, &to); err != nil {
				return fmt.Errorf("partition %s: unexpected bound %q", name, bound)
			}
			if to <= c {
				drop = append(drop, name)
			}
		}
		if err := rs.Err(); err != nil {
			return err
		}
		for _, n := range drop {
			if _, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{n}.Sanitize()); err != nil {
				return err
			}
		}
		for _, t := range []string{"rows", "events", "messages"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE received < $1`, c); err != nil {
				return err
			}
		}
		// The rollups' hours of the dropped days (rows deleted above were
		// taken out of them by their trigger), and keys counted down to zero.
		for _, t := range []string{"rollup_status", "rollup_domains"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE hour < $1 OR n = 0`, dayOf(c)); err != nil {
				return err
			}
		}
		return nil
	})
	s.forgetPartitions()
	if err != nil {
		return fmt.Errorf("postgres: prune: %w", err)
	}
	return nil
}
