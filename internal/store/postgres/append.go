package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Append merges a batch the way a bulk load would: the adapter reads what
// the store holds of the batch's messages (a few index probes each), folds
// the new events into it in Go, and writes the result set-wise, in one
// transaction:
//
//   - INSERT of the batch's addresses that this Store has not stored
//     before (knownAddresses) into the addresses table (migration 00006;
//     ON CONFLICT DO NOTHING, so only the new ones are written), in one
//     order, first, in the same round trip as the next step;
//   - SELECT ... FOR UPDATE of the batch's stored messages (in trace ID
//     order, so concurrent appends lock in the same order);
//   - for those, in one round trip: which of the batch's events are stored
//     already (idempotency) and the stored rows of the batch's recipients;
//   - COPY of the new messages, the new events and the new rows straight
//     into their tables, events and rows into their day's partition (no
//     staging, no ON CONFLICT: what is new was decided under the messages'
//     locks; a concurrent first insert of the same message fails with a
//     unique violation and the append runs again);
//   - then, under a transaction-level advisory lock that appends share
//     (rollupLockSQL: what follows locks rollup keys until the commit, so
//     concurrent appends do this part one at a time and the COPYs in
//     parallel): one UPDATE each (from arrays) for the messages that
//     changed, the rows that follow their message (attributes, received
//     time, the placeholder's outcome), the events that move with a
//     received time, and the recipients' rows whose status, to_ip,
//     expanded_from or folder (of the latest Save, migration 00005)
//     changed; one DELETE for the placeholders that recipients replace;
//   - one call of mt_rollup_apply with the new rows' rollup delta, folded
//     in Go.
//
// Every row that changes is written once per append (twice only when a
// stored message's attributes change and one of its recipients' status
// too), and nothing of a message that the batch does not touch is read or
// written. The rollups' statement triggers (migration 00003) see the rows
// of the UPDATEs and DELETEs, which go through the parent table; the COPYs
// into partitions fire none (a statement trigger of a partitioned table
// fires for statements on it only), so Append adds their delta itself:
// the trigger's transition table would have held a copy of every new row,
// and its plpgsql grouped them again.

// stagedEvent is a validated event of a batch. Its JSON body is made as
// COPY sends it, so that a batch holds no second copy of its events.
type stagedEvent struct {
	e    *mailflow.Event // the caller's, not modified
	key  string
	rcpt string // mailflow.NormalizeAddress(e.Recipient)
	t    int64  // e.Time in unix ns
}

// body is the event as stored: JSON, its times in UTC.
func (e *stagedEvent) body(buf []byte) ([]byte, error) {
	c := *e.e
	c.Time = c.Time.UTC()
	if !c.Received.IsZero() {
		c.Received = c.Received.UTC()
	}
	w := bytes.NewBuffer(buf[:0])
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(w.Bytes(), []byte{'\n'}), nil
}

// batchMsg is one message of a batch: its events, in append order.
type batchMsg struct {
	id  string
	evs []int32 // indexes into appendBatch.evs
}

// appendBatch is a batch validated and grouped by message, once per Append
// (an attempt that runs again reuses it).
type appendBatch struct {
	evs  []stagedEvent
	msgs []*batchMsg // in trace ID order
	ids  []string    // the msgs' trace IDs, in the same order
	days map[int64]bool
	// the addresses the batch's rows may hold, for the addresses table
	// (migration 00006), sorted: every normalized sender and recipient of
	// its events, and "" (a message without a sender, a placeholder row)
	senders, rcpts []string
}

func prepareBatch(events []mailflow.Event) (*appendBatch, error) {
	b := &appendBatch{evs: make([]stagedEvent, 0, len(events)), days: map[int64]bool{}}
	byID := map[string]*batchMsg{}
	seen := make(map[string]struct{}, len(events))
	senders, rcpts := map[string]struct{}{"": {}}, map[string]struct{}{"": {}}
	var kb []byte
	for i := range events {
		e := &events[i]
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		key := e.Key()
		kb = append(append(append(kb[:0], e.MessageTraceID...), 0), key...)
		if _, dup := seen[string(kb)]; dup {
			continue
		}
		seen[string(kb)] = struct{}{}
		t := e.Time.UnixNano()
		b.days[dayOf(t)] = true
		if !e.Received.IsZero() {
			b.days[dayOf(e.Received.UnixNano())] = true
		}
		m := byID[e.MessageTraceID]
		if m == nil {
			m = &batchMsg{id: e.MessageTraceID}
			byID[m.id] = m
			b.msgs = append(b.msgs, m)
		}
		m.evs = append(m.evs, int32(len(b.evs)))
		rcpt := mailflow.NormalizeAddress(e.Recipient)
		b.evs = append(b.evs, stagedEvent{e: e, key: key, rcpt: rcpt, t: t})
		rcpts[rcpt] = struct{}{}
		if e.Sender != "" {
			senders[mailflow.NormalizeAddress(e.Sender)] = struct{}{}
		}
	}
	b.senders, b.rcpts = slices.Sorted(maps.Keys(senders)), slices.Sorted(maps.Keys(rcpts))
	sort.Slice(b.msgs, func(i, j int) bool { return b.msgs[i].id < b.msgs[j].id })
	b.ids = make([]string, len(b.msgs))
	for i, m := range b.msgs {
		b.ids[i] = m.id
	}
	return b, nil
}

// outcome is a status-deciding event's (time, rank); ok false is GettingStatus.
type outcome struct {
	t    int64
	rank int32
	ok   bool
}

// better is betterSQL: o supersedes cur (mailflow.Outcome.Supersedes).
func (o outcome) better(cur outcome) bool {
	return o.ok && (!cur.ok || o.t > cur.t || (o.t == cur.t && o.rank > cur.rank))
}

func (o outcome) status() string {
	if !o.ok {
		return string(mailflow.StatusGettingStatus)
	}
	return string(statusByRank[o.rank])
}

func (o outcome) time() any {
	if !o.ok {
		return nil
	}
	return o.t
}

func (o outcome) rankValue() any {
	if !o.ok {
		return nil
	}
	return o.rank
}

func outcomeOf(e *stagedEvent) outcome {
	if st, ok := mailflow.StatusOf(e.e.Type); ok {
		return outcome{t: e.t, rank: int32(ranks[st]), ok: true}
	}
	return outcome{}
}

// msgState is what the messages table holds of a message (the columns
// derived from these, lower-cased or as inet, are computed when written).
type msgState struct {
	hasRx      bool // rxNS is the earliest Event.Received seen
	rxNS       int64
	first      int64
	messageID  string
	sender     string // normalized
	subject    string
	size       int64
	direction  string
	origIP     string
	fromIP     string
	msgOutcome outcome // the best message-level outcome (recipient '')
}

func (m *msgState) received() int64 {
	if m.hasRx {
		return m.rxNS
	}
	return m.first
}

// fold merges one new event in: earliest times, the latest non-empty
// attributes (in append order), the best message-level outcome.
func (m *msgState) fold(e *stagedEvent, isFirst bool) {
	if isFirst || e.t < m.first {
		m.first = e.t
	}
	if !e.e.Received.IsZero() {
		if r := e.e.Received.UnixNano(); !m.hasRx || r < m.rxNS {
			m.rxNS, m.hasRx = r, true
		}
	}
	if e.e.MessageID != "" {
		m.messageID = e.e.MessageID
	}
	if s := mailflow.NormalizeAddress(e.e.Sender); s != "" {
		m.sender = s
	}
	if e.e.Subject != "" {
		m.subject = e.e.Subject
	}
	if e.e.Size > 0 {
		m.size = e.e.Size
	}
	if e.e.Direction != "" {
		m.direction = string(e.e.Direction)
	}
	if e.e.OriginalClientIP != "" {
		m.origIP = e.e.OriginalClientIP
	}
	if e.e.FromIP != "" {
		m.fromIP = e.e.FromIP
	}
	if e.rcpt == "" {
		if o := outcomeOf(e); o.better(m.msgOutcome) {
			m.msgOutcome = o
		}
	}
}

// attrsEqual: the same values on the message's rows (the outcome aside).
func (m *msgState) attrsEqual(o *msgState) bool {
	return m.received() == o.received() && m.messageID == o.messageID && m.sender == o.sender &&
		m.subject == o.subject && m.size == o.size && m.direction == o.direction &&
		m.origIP == o.origIP && m.fromIP == o.fromIP
}

func (m *msgState) rxValue() any {
	if !m.hasRx {
		return nil
	}
	return m.rxNS
}

// placement is a Save's (folder, time in unix ns); folder "" is none.
type placement struct {
	folder string
	t      int64
}

// better reports whether p replaces cur: mailflow.Placement.Supersedes,
// the one rule (both stores and the details use it), on the unix
// nanoseconds this package keeps.
func (p placement) better(cur placement) bool {
	return p.folder != "" && mailflow.Placement{Folder: p.folder, Time: time.Unix(0, p.t)}.
		Supersedes(mailflow.Placement{Folder: cur.folder, Time: time.Unix(0, cur.t)})
}

func (p placement) time() any {
	if p.folder == "" {
		return nil
	}
	return p.t
}

func ptrPlacement(p placement) *int64 {
	if p.folder == "" {
		return nil
	}
	t := p.t
	return &t
}

// rowState is the recipient's own part of a (message, recipient) row.
type rowState struct {
	toIP         string
	expandedFrom string // normalized
	o            outcome
	folder       placement // its latest Save
}

func (r *rowState) fold(e *stagedEvent) {
	if e.e.ToIP != "" {
		r.toIP = e.e.ToIP
	}
	if x := mailflow.NormalizeAddress(e.e.ExpandedFrom); x != "" {
		r.expandedFrom = x
	}
	if o := outcomeOf(e); o.better(r.o) {
		r.o = o
	}
	if e.e.Type == mailflow.EventSave && e.e.Folder != "" {
		if p := (placement{folder: e.e.Folder, t: e.t}); p.better(r.folder) {
			r.folder = p
		}
	}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

func inet(ip string) any {
	if ip == "" {
		return nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// inetText is inet as text for an array parameter (” for NULL).
func inetText(ip string) string {
	if p, ok := inet(ip).(netip.Prefix); ok {
		return p.String()
	}
	return ""
}

// Append stores events atomically: all of them or, on error, none. Events
// already stored (same message trace id and Event.Key) change nothing.
func (s *Store) Append(ctx context.Context, events []mailflow.Event) error {
	if len(events) == 0 {
		return nil
	}
	b, err := prepareBatch(events)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := s.ensurePartitions(ctx, b.days)
		if err != nil {
			if attempt < 3 && connectionLost(ctx, err) {
				continue
			}
			return err
		}
		senders, rcpts := s.addrs.unknown(roleSender, b.senders), s.addrs.unknown(roleRecipient, b.rcpts)
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return appendTx(ctx, tx, b, senders, rcpts) })
		if err == nil {
			s.addrs.add(roleSender, senders)
			s.addrs.add(roleRecipient, rcpts)
			return nil
		}
		if attempt < 3 && connectionLost(ctx, err) {
			// The server may be another now (a standby promoted), which
			// may lack the newest addresses.
			s.addrs.forget()
			continue // Append is idempotent: safe to run again whatever reached the server
		}
		var pe *pgconn.PgError
		if attempt < 3 && errors.As(err, &pe) {
			switch pe.Code {
			case "23514", "42P01": // no partition for a row, or one dropped under us: recreate
				s.forgetPartitions()
				continue
			case "40P01", "40001", "23505": // deadlock, serialization, a concurrent first insert
				continue
			}
		}
		return fmt.Errorf("postgres: append: %w", err)
	}
}

// lockMessagesSQL reads (and locks) the batch's stored messages.
const lockMessagesSQL = `SELECT trace_id, received_explicit, first_event, message_id, sender, subject, size,
	direction, original_client_ip, from_ip, o_time, o_rank
FROM messages WHERE trace_id = ANY($1::text[]) ORDER BY trace_id FOR UPDATE`

// planSettingsSQL: the statements below are driven by arrays of the
// batch's keys, and must run as nested loops over index probes, O(batch)
// whatever the size of the store (each probe a LATERAL subquery behind
// OFFSET 0, so that the arrays are the outer side whatever the planner
// estimates; an UPDATE then finds its rows by the tuple IDs the probes
// read, in the same statement). A plan made while a partition was small
// (or before it was ever analyzed) and cached as a generic plan would
// otherwise scan the partition and compare each of its rows with every
// element of the arrays, O(store x batch). So, for this transaction: no
// sequential scan, bitmap scan or materialized inner side where an index
// probe serves, no hash or merge join (which would read a whole partition
// too). No range of received: a range, even of whole days, makes the
// planner walk it as the outer side when its statistics are behind (as
// they are for the day being appended to).
//
// Each statement also names the received times of its rows as values
// (received = ANY($n), the batch's stored messages'), so that the planner
// prunes the partitions they are not in before it plans: one or two
// partitions and their indexes are planned, not every day of the
// retention (a one-shot ingest plans each statement once: 90 days of
// rows partitions took 0.3 s to plan at 1M rows). The probes' own
// received = u.received then picks the partition as they run. JIT is off
// (a plan that still covers many partitions crosses its threshold, and
// compiling cost more than the statement).
const planSettingsSQL = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	set_config('enable_material', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true)`

// The reads and writes driven by arrays.
const (
	storedEventsSQL = `SELECT u.trace_id, u.key
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(trace_id, key, received)
CROSS JOIN LATERAL (SELECT FROM events e WHERE e.trace_id = u.trace_id AND e.key = u.key AND e.received = u.received
	AND e.received = ANY($4::bigint[]) OFFSET 0) e`

	// The recipient is compared under "POSIX" (byte equality, as "C"), which
	// no index of rows is built with: a probe for the placeholder (recipient
	// '') must not walk rows_recipient's ('', received) entries, one per
	// message received in that second, as the planner may choose to when it
	// cannot tell '' from an ordinary address.
	storedRowsSQL = `SELECT u.trace_id, u.recipient, r.to_ip, r.expanded_from, r.status_time, r.status_rank, r.folder, r.folder_time, r.ctid
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(trace_id, recipient, received)
CROSS JOIN LATERAL (SELECT r.*, r.ctid FROM rows r WHERE r.trace_id = u.trace_id AND r.recipient = u.recipient COLLATE "POSIX"
	AND r.received = u.received AND r.received = ANY($4::bigint[]) OFFSET 0) r`

	updateMessagesSQL = `UPDATE messages m SET received_explicit = u.rx, first_event = u.first, received = u.received,
	message_id = u.mid, message_id_lc = u.mid_lc, sender = u.sender, sender_domain = u.sdom,
	subject = u.subject, subject_lc = u.subject_lc, size = u.size, direction = u.dir,
	original_client_ip = u.oip, original_client_inet = NULLIF(u.oinet, '')::inet,
	from_ip = u.fip, from_inet = NULLIF(u.finet, '')::inet, o_time = u.ot, o_rank = u.orank
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
	$9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
	$17::bigint[], $18::int[])
	AS u(trace_id, rx, first, received, mid, mid_lc, sender, sdom, subject, subject_lc, size, dir, oip, oinet, fip, finet, ot, orank)
WHERE m.trace_id = u.trace_id`

	deletePlaceholdersSQL = `DELETE FROM rows WHERE ctid = ANY($1::tid[]) AND tableoid = $2::regclass
AND received >= $3 AND received < $4`

	// the message's columns on all its rows, and the placeholder's outcome;
	// not on the rows this transaction copied in (they hold them already)
	updateMessageRowsSQL = `UPDATE rows r SET received = u.received, sender = u.sender, sender_domain = u.sdom,
	subject = u.subject, subject_lc = u.subject_lc, message_id = u.mid, message_id_lc = u.mid_lc,
	size = u.size, direction = u.dir, original_client_ip = u.oip, original_client_inet = NULLIF(u.oinet, '')::inet,
	from_ip = u.fip, from_inet = NULLIF(u.finet, '')::inet,
	status = CASE WHEN r.recipient = '' THEN u.pstatus ELSE r.status END,
	status_time = CASE WHEN r.recipient = '' THEN u.ptime ELSE r.status_time END,
	status_rank = CASE WHEN r.recipient = '' THEN u.prank ELSE r.status_rank END
FROM (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
	$9::text[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
	$16::text[], $17::bigint[], $18::int[])
	AS u(trace_id, old_received, received, sender, sdom, subject, subject_lc, mid, mid_lc, size, dir, oip, oinet, fip, finet,
	pstatus, ptime, prank)
	CROSS JOIN LATERAL (SELECT r.ctid AS tid, r.tableoid AS part FROM rows r
		WHERE r.trace_id = u.trace_id AND r.received = u.old_received AND r.received = ANY($19::bigint[])
			AND r.xmin <> pg_current_xact_id()::xid OFFSET 0) x) u
WHERE r.ctid = u.tid AND r.tableoid = u.part AND r.received = ANY($19::bigint[])`

	moveEventsSQL = `UPDATE events e SET received = u.received
FROM (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(trace_id, old_received, received)
	CROSS JOIN LATERAL (SELECT e.ctid AS tid, e.tableoid AS part FROM events e
		WHERE e.trace_id = u.trace_id AND e.received = u.old_received AND e.received = ANY($4::bigint[])
			AND e.xmin <> pg_current_xact_id()::xid OFFSET 0) x) u
WHERE e.ctid = u.tid AND e.tableoid = u.part AND e.received = ANY($4::bigint[])`

	// a recipient's own columns, after its message's (above)
	updateRowsSQL = `UPDATE rows r SET to_ip = u.to_ip, to_inet = NULLIF(u.to_inet, '')::inet,
	expanded_from = u.xfrom, status = u.status, status_time = u.stime, status_rank = u.srank,
	folder = u.folder, folder_time = u.ftime
FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::int[],
	$10::text[], $11::bigint[])
	AS u(trace_id, recipient, received, to_ip, to_inet, xfrom, status, stime, srank, folder, ftime)
	CROSS JOIN LATERAL (SELECT r.ctid AS tid, r.tableoid AS part FROM rows r WHERE r.trace_id = u.trace_id
		AND r.recipient = u.recipient AND r.received = u.received AND r.received = ANY($12::bigint[]) OFFSET 0) x) u
WHERE r.ctid = u.tid AND r.tableoid = u.part AND r.received = ANY($12::bigint[])`
)

var (
	messageCols = []string{"trace_id", "received_explicit", "first_event", "received", "message_id", "message_id_lc",
		"sender", "sender_domain", "subject", "subject_lc", "size", "direction", "original_client_ip",
		"original_client_inet", "from_ip", "from_inet", "o_time", "o_rank"}
	eventCols     = []string{"received", "trace_id", "key", "recipient", "time", "body"}
	rowInsertCols = []string{"received", "trace_id", "recipient", "recipient_domain", "sender", "sender_domain",
		"subject", "subject_lc", "message_id", "message_id_lc", "size", "direction", "original_client_ip",
		"original_client_inet", "from_ip", "from_inet", "to_ip", "to_inet", "expanded_from", "status",
		"status_time", "status_rank", "folder", "folder_time"}
)

// newRow is a row to insert: its message and its own part.
type newRow struct {
	m    *msgState
	id   string
	rcpt string
	r    rowState
}

// plan is what one attempt writes.
type plan struct {
	newMsgs  []int // indexes into appendBatch.msgs, with their states in states
	states   []msgState
	events   []int32 // indexes into appendBatch.evs
	received []int64 // the received time of each of events
	rows     []newRow

	// stored messages that changed
	updMsgs struct {
		id, mid, midLC, sender, sdom, subject, subjectLC, dir, oip, oinet, fip, finet []string
		rx, ot                                                                        []*int64
		first, received, size                                                         []int64
		orank                                                                         []*int32
	}
	// their rows: message columns (and the placeholder's outcome)
	updMsgRows struct {
		id, sender, sdom, subject, subjectLC, mid, midLC, dir, oip, oinet, fip, finet, pstatus []string
		oldReceived, received, size                                                            []int64
		ptime                                                                                  []*int64
		prank                                                                                  []*int32
	}
	moveEvents struct {
		id                    []string
		oldReceived, received []int64
	}
	// the placeholders that recipients replace, by partition: their
	// tuples as read above, under the messages' locks (deleted by tuple ID,
	// a plan that cannot turn into a walk of the partition)
	delPlaceholders map[int64][]pgtype.TID // by day
	updRows         struct {
		id, rcpt, toIP, toInet, xfrom, status, folder []string
		received                                      []int64
		stime, ftime                                  []*int64
		srank                                         []*int32
	}
}

func ptr64(o outcome) *int64 {
	if !o.ok {
		return nil
	}
	t := o.t
	return &t
}

func ptrRank(o outcome) *int32 {
	if !o.ok {
		return nil
	}
	r := o.rank
	return &r
}

// insertAddressesSQL adds the batch's new addresses to the addresses table
// (migration 00006): a probe of its primary key for each address stored
// already, which writes nothing. The arrays are sorted and the senders
// come first, so that concurrent appends that insert the same new
// addresses take their locks in one order (one waits for the other to
// commit instead of a deadlock); it runs first in the transaction, before
// any rollup key is locked, for the same reason.
const insertAddressesSQL = `INSERT INTO addresses (address, role)
SELECT a, 's'::"char" FROM unnest($1::text[]) AS a
UNION ALL
SELECT a, 'r'::"char" FROM unnest($2::text[]) AS a
ON CONFLICT DO NOTHING`

// knownAddresses is what one Store knows the addresses table to hold (it
// inserted them, or found them there, in an append that committed), so
// that an append sends only the others: most of a batch's addresses were
// seen before. Addresses are never deleted from the table (retention
// leaves them, docs/scaling.md), so what it holds stays true; it is
// forgotten when the connection to the server is lost (a failover), and
// when it reaches maxKnownAddresses entries (a few MB), to start again.
type knownAddresses struct {
	mu sync.Mutex
	m  map[string]struct{} // role byte + address
}

const maxKnownAddresses = 1 << 16

// unknown is the addresses of role (sorted) not known to be stored, sorted.
func (k *knownAddresses) unknown(role byte, addrs []string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	var key []byte
	for _, a := range addrs {
		key = append(append(key[:0], role), a...)
		if _, ok := k.m[string(key)]; !ok {
			out = append(out, a)
		}
	}
	return out
}

func (k *knownAddresses) add(role byte, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m)+len(addrs) > maxKnownAddresses {
		k.m = make(map[string]struct{}, min(maxKnownAddresses, 2*len(addrs)))
	}
	for _, a := range addrs {
		// a new string: a over a whole line would keep the line
		k.m[string(append([]byte{role}, a...))] = struct{}{}
	}
}

func (k *knownAddresses) forget() {
	k.mu.Lock()
	k.m = nil
	k.mu.Unlock()
}

func appendTx(ctx context.Context, tx pgx.Tx, b *appendBatch, senders, rcpts []string) error {
	// 1. the batch's new addresses; the stored messages of the batch, locked
	qs := []query{{sql: planSettingsSQL}}
	if len(senders)+len(rcpts) > 0 {
		qs = append(qs, query{sql: insertAddressesSQL, args: []any{senders, rcpts}})
	}
	br := tx.SendBatch(ctx, batchOf(append(qs, query{sql: lockMessagesSQL, args: []any{b.ids}})...))
	for range qs {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	stored := map[string]*msgState{}
	rs, err := br.Query()
	if err != nil {
		br.Close()
		return err
	}
	for rs.Next() {
		var id string
		var rx, ot *int64
		var orank *int32
		m := &msgState{}
		if err := rs.Scan(&id, &rx, &m.first, &m.messageID, &m.sender, &m.subject, &m.size, &m.direction,
			&m.origIP, &m.fromIP, &ot, &orank); err != nil {
			rs.Close()
			br.Close()
			return err
		}
		if rx != nil {
			m.rxNS, m.hasRx = *rx, true
		}
		if ot != nil && orank != nil {
			m.msgOutcome = outcome{t: *ot, rank: *orank, ok: true}
		}
		stored[id] = m
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		br.Close()
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}

	// 2. of those: the events stored already, the rows of the batch's recipients
	storedEvents := map[[2]string]bool{}
	storedRows := map[[2]string]*rowState{}
	placeholders := map[string]pgtype.TID{}
	if len(stored) > 0 {
		var evID, evKey, rowID, rowRcpt []string
		var evRcv, rowRcv []int64
		for _, m := range b.msgs {
			st := stored[m.id]
			if st == nil {
				continue
			}
			rcv := st.received()
			rowID, rowRcpt, rowRcv = append(rowID, m.id), append(rowRcpt, ""), append(rowRcv, rcv)
			seenRcpt := map[string]bool{"": true}
			for _, i := range m.evs {
				e := &b.evs[i]
				evID, evKey, evRcv = append(evID, m.id), append(evKey, e.key), append(evRcv, rcv)
				if !seenRcpt[e.rcpt] {
					seenRcpt[e.rcpt] = true
					rowID, rowRcpt, rowRcv = append(rowID, m.id), append(rowRcpt, e.rcpt), append(rowRcv, rcv)
				}
			}
		}
		br := tx.SendBatch(ctx, batchOf(
			query{sql: storedEventsSQL, args: []any{evID, evKey, evRcv, distinct(evRcv)}},
			query{sql: storedRowsSQL, args: []any{rowID, rowRcpt, rowRcv, distinct(rowRcv)}},
		))
		err := func() error {
			rs, err := br.Query()
			if err != nil {
				return err
			}
			for rs.Next() {
				var k [2]string
				if err := rs.Scan(&k[0], &k[1]); err != nil {
					rs.Close()
					return err
				}
				storedEvents[k] = true
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return err
			}
			if rs, err = br.Query(); err != nil {
				return err
			}
			for rs.Next() {
				var k [2]string
				var st *int64
				var sr *int32
				r := &rowState{}
				var ft *int64
				var tid pgtype.TID
				if err := rs.Scan(&k[0], &k[1], &r.toIP, &r.expandedFrom, &st, &sr, &r.folder.folder, &ft, &tid); err != nil {
					rs.Close()
					return err
				}
				if st != nil && sr != nil {
					r.o = outcome{t: *st, rank: *sr, ok: true}
				}
				if ft != nil {
					r.folder.t = *ft
				} else {
					r.folder = placement{}
				}
				storedRows[k] = r
				if k[1] == "" {
					placeholders[k[0]] = tid
				}
			}
			rs.Close()
			return rs.Err()
		}()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}

	// 3. the new state, in Go
	p := buildPlan(b, stored, storedEvents, storedRows, placeholders)

	// 4. the new messages, events and rows
	if len(p.newMsgs) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"}, messageCols, &messageSource{b: b, p: p}); err != nil {
			return err
		}
	}
	// Events and rows are copied straight into their day's partition: no
	// routing of each row through the parent, and no statement trigger of
	// the parent's (its transition table would hold a copy of every new
	// row): the new rows' rollup delta is folded here instead, and added
	// in one statement.
	days, groups := dayGroups(len(p.events), func(i int) int64 { return dayOf(p.received[i]) })
	for k, d := range days {
		src := &eventSource{b: b, events: p.events, received: p.received}
		if groups != nil {
			src.events, src.received = make([]int32, len(groups[k])), make([]int64, len(groups[k]))
			for j, i := range groups[k] {
				src.events[j], src.received[j] = p.events[i], p.received[i]
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{partName("events", d)}, eventCols, src); err != nil {
			return err
		}
	}
	if len(p.rows) > 0 {
		days, groups := dayGroups(len(p.rows), func(i int) int64 { return dayOf(p.rows[i].m.received()) })
		for k, d := range days {
			src := &rowSource{rows: p.rows}
			if groups != nil {
				src.rows = make([]newRow, len(groups[k]))
				for j, i := range groups[k] {
					src.rows[j] = p.rows[i]
				}
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{partName("rows", d)}, rowInsertCols, src); err != nil {
				return err
			}
		}
	}
	// 5. what changes the rollups, last: the UPDATEs and DELETEs of stored
	// rows (whose statement triggers add their delta) and the new rows'
	// delta. A rollup key locked here stays locked until the commit, and
	// concurrent appends (the ingester's writers) share the hour's keys:
	// so the heavy part above runs in parallel, and this part one append
	// at a time, under an advisory lock (without it, two appends that
	// lock the same keys in two statements deadlock). The COPYs above do
	// not meet these statements' rows: the new rows and events are
	// others, and the UPDATEs skip what this transaction wrote.
	qs = []query{{sql: rollupLockSQL}}
	if u := &p.updMsgs; len(u.id) > 0 {
		qs = append(qs, query{sql: updateMessagesSQL, args: []any{u.id, u.rx, u.first, u.received, u.mid, u.midLC,
			u.sender, u.sdom, u.subject, u.subjectLC, u.size, u.dir, u.oip, u.oinet, u.fip, u.finet, u.ot, u.orank}})
	}
	for _, d := range slices.Sorted(maps.Keys(p.delPlaceholders)) {
		// through the parent table, whose statement triggers keep the
		// rollups; the day's bounds prune the other partitions
		qs = append(qs, query{sql: deletePlaceholdersSQL,
			args: []any{p.delPlaceholders[d], partName("rows", d), d, d + day}})
	}
	if u := &p.updMsgRows; len(u.id) > 0 {
		qs = append(qs, query{sql: updateMessageRowsSQL, args: []any{u.id, u.oldReceived, u.received, u.sender, u.sdom,
			u.subject, u.subjectLC, u.mid, u.midLC, u.size, u.dir, u.oip, u.oinet, u.fip, u.finet,
			u.pstatus, u.ptime, u.prank, distinct(u.oldReceived)}})
	}
	if mv := &p.moveEvents; len(mv.id) > 0 {
		qs = append(qs, query{sql: moveEventsSQL, args: []any{mv.id, mv.oldReceived, mv.received, distinct(mv.oldReceived)}})
	}
	if u := &p.updRows; len(u.id) > 0 {
		qs = append(qs, query{sql: updateRowsSQL, args: []any{u.id, u.rcpt, u.received, u.toIP, u.toInet, u.xfrom,
			u.status, u.stime, u.srank, u.folder, u.ftime, distinct(u.received)}})
	}
	if len(p.rows) > 0 {
		d := rollupDelta(p.rows)
		qs = append(qs, query{sql: rollupApplySQL, args: []any{d.hour, d.sd, d.rd, d.st, d.dir, d.n}})
	}
	if len(qs) == 1 {
		return nil // nothing changes the rollups: no lock
	}
	// the lock, the statements and the delta in one round trip
	return tx.SendBatch(ctx, batchOf(qs...)).Close()
}

// rollupLockSQL serializes the rollups' writes between appends (of one
// ingester's writers, or of several ingesters): a transaction-level
// advisory lock, released at commit, under a key of mailtrace's own.
const rollupLockSQL = `SELECT pg_advisory_xact_lock(7306238517071660402)`

// rollupApplySQL adds a delta to the rollups (migration 00003's function,
// which the rows' statement triggers call for every other statement).
const rollupApplySQL = `SELECT mt_rollup_apply($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])`

// hourNS is the rollups' hour, as mt_rollup_rows computes it (received -
// received % hour: Go's % truncates as PostgreSQL's does).
const hourNS = int64(time.Hour)

// rollupKey is a rollup_domains key (rollup_status's is part of it).
type rollupKey struct {
	hour       int64
	sd, rd, st string
	dir        string
}

// rollupDeltaArrays is a rollup delta as mt_rollup_apply takes it.
type rollupDeltaArrays struct {
	hour       []int64
	sd, rd, st []string
	dir        []string
	n          []int64
}

// rollupDelta is what inserting rows adds to the rollups: one count per
// key, with the values rowSource copies.
func rollupDelta(rows []newRow) rollupDeltaArrays {
	counts := map[rollupKey]int64{}
	for i := range rows {
		r := &rows[i]
		rcv := r.m.received()
		counts[rollupKey{hour: rcv - rcv%hourNS, sd: domainOf(r.m.sender), rd: domainOf(r.rcpt),
			st: r.r.o.status(), dir: r.m.direction}]++
	}
	var d rollupDeltaArrays
	for k, n := range counts {
		d.hour, d.sd, d.rd, d.st, d.dir = append(d.hour, k.hour), append(d.sd, k.sd), append(d.rd, k.rd), append(d.st, k.st), append(d.dir, k.dir)
		d.n = append(d.n, n)
	}
	return d
}

// dayGroups splits the n elements of a sequence (day(i) the day of the
// i-th) by day, in day order, each group in the sequence's order: the
// elements' indexes, nil when all are of one day (nearly always; a batch
// across midnight has two).
func dayGroups(n int, day func(i int) int64) (days []int64, groups [][]int) {
	if n == 0 {
		return nil, nil
	}
	d0 := day(0)
	i := 1
	for i < n && day(i) == d0 {
		i++
	}
	if i == n {
		return []int64{d0}, nil
	}
	by := map[int64][]int{}
	for i := range n {
		d := day(i)
		by[d] = append(by[d], i)
	}
	days = slices.Sorted(maps.Keys(by))
	for _, d := range days {
		groups = append(groups, by[d])
	}
	return days, groups
}

// buildPlan folds the batch's new events into what the store holds.
func buildPlan(b *appendBatch, stored map[string]*msgState, storedEvents map[[2]string]bool, storedRows map[[2]string]*rowState,
	placeholders map[string]pgtype.TID) *plan {
	p := &plan{events: make([]int32, 0, len(b.evs)), received: make([]int64, 0, len(b.evs))}
	p.states = make([]msgState, 0, len(b.msgs))
	var newEvs []int32
	var rcpts []string
	rowOf := map[string]*rowState{}
	for mi, m := range b.msgs {
		old := stored[m.id]
		newEvs = newEvs[:0]
		for _, i := range m.evs {
			if old != nil && storedEvents[[2]string{m.id, b.evs[i].key}] {
				continue
			}
			newEvs = append(newEvs, i)
		}
		if len(newEvs) == 0 {
			continue // everything of it is stored
		}
		var st msgState
		if old != nil {
			st = *old
		}
		// the recipients' parts, in order of first appearance
		rcpts = rcpts[:0]
		clear(rowOf)
		for k, i := range newEvs {
			e := &b.evs[i]
			st.fold(e, old == nil && k == 0)
			if e.rcpt == "" {
				continue
			}
			r := rowOf[e.rcpt]
			if r == nil {
				r = &rowState{}
				if old != nil {
					if sr := storedRows[[2]string{m.id, e.rcpt}]; sr != nil {
						*r = *sr
					}
				}
				rowOf[e.rcpt] = r
				rcpts = append(rcpts, e.rcpt)
			}
			r.fold(e)
		}
		rcv := st.received()
		for _, i := range newEvs {
			p.events = append(p.events, i)
			p.received = append(p.received, rcv)
		}
		if old == nil {
			p.newMsgs = append(p.newMsgs, mi)
			p.states = append(p.states, st)
			sp := &p.states[len(p.states)-1]
			for _, rc := range rcpts {
				p.rows = append(p.rows, newRow{m: sp, id: m.id, rcpt: rc, r: *rowOf[rc]})
			}
			if len(rcpts) == 0 {
				p.rows = append(p.rows, newRow{m: sp, id: m.id, r: rowState{o: st.msgOutcome}})
			}
			continue
		}

		oldRcv := old.received()
		_, hasPlaceholder := storedRows[[2]string{m.id, ""}]
		if st != *old {
			u := &p.updMsgs
			u.id = append(u.id, m.id)
			u.rx = append(u.rx, optNS(st.hasRx, st.rxNS))
			u.first, u.received = append(u.first, st.first), append(u.received, rcv)
			u.mid, u.midLC = append(u.mid, st.messageID), append(u.midLC, strings.ToLower(mailflow.NormalizeMessageID(st.messageID)))
			u.sender, u.sdom = append(u.sender, st.sender), append(u.sdom, domainOf(st.sender))
			u.subject, u.subjectLC = append(u.subject, st.subject), append(u.subjectLC, strings.ToLower(st.subject))
			u.size, u.dir = append(u.size, st.size), append(u.dir, st.direction)
			u.oip, u.oinet = append(u.oip, st.origIP), append(u.oinet, inetText(st.origIP))
			u.fip, u.finet = append(u.fip, st.fromIP), append(u.finet, inetText(st.fromIP))
			u.ot, u.orank = append(u.ot, ptr64(st.msgOutcome)), append(u.orank, ptrRank(st.msgOutcome))
		}
		if hasPlaceholder && len(rcpts) > 0 {
			// recipients replace the placeholder
			if p.delPlaceholders == nil {
				p.delPlaceholders = map[int64][]pgtype.TID{}
			}
			d := dayOf(oldRcv)
			p.delPlaceholders[d] = append(p.delPlaceholders[d], placeholders[m.id])
			hasPlaceholder = false
		}
		if !st.attrsEqual(old) || (hasPlaceholder && st.msgOutcome != old.msgOutcome) {
			u := &p.updMsgRows
			u.id, u.oldReceived, u.received = append(u.id, m.id), append(u.oldReceived, oldRcv), append(u.received, rcv)
			u.sender, u.sdom = append(u.sender, st.sender), append(u.sdom, domainOf(st.sender))
			u.subject, u.subjectLC = append(u.subject, st.subject), append(u.subjectLC, strings.ToLower(st.subject))
			u.mid, u.midLC = append(u.mid, st.messageID), append(u.midLC, strings.ToLower(mailflow.NormalizeMessageID(st.messageID)))
			u.size, u.dir = append(u.size, st.size), append(u.dir, st.direction)
			u.oip, u.oinet = append(u.oip, st.origIP), append(u.oinet, inetText(st.origIP))
			u.fip, u.finet = append(u.fip, st.fromIP), append(u.finet, inetText(st.fromIP))
			u.pstatus, u.ptime, u.prank = append(u.pstatus, st.msgOutcome.status()), append(u.ptime, ptr64(st.msgOutcome)), append(u.prank, ptrRank(st.msgOutcome))
		}
		if rcv != oldRcv {
			mv := &p.moveEvents
			mv.id, mv.oldReceived, mv.received = append(mv.id, m.id), append(mv.oldReceived, oldRcv), append(mv.received, rcv)
		}
		if len(rcpts) > 0 {
			sp := &msgState{}
			*sp = st
			for _, rc := range rcpts {
				r := rowOf[rc]
				sr := storedRows[[2]string{m.id, rc}]
				if sr == nil {
					p.rows = append(p.rows, newRow{m: sp, id: m.id, rcpt: rc, r: *r})
					continue
				}
				if *r == *sr {
					continue
				}
				u := &p.updRows
				u.id, u.rcpt, u.received = append(u.id, m.id), append(u.rcpt, rc), append(u.received, rcv)
				u.toIP, u.toInet, u.xfrom = append(u.toIP, r.toIP), append(u.toInet, inetText(r.toIP)), append(u.xfrom, r.expandedFrom)
				u.status, u.stime, u.srank = append(u.status, r.o.status()), append(u.stime, ptr64(r.o)), append(u.srank, ptrRank(r.o))
				u.folder, u.ftime = append(u.folder, r.folder.folder), append(u.ftime, ptrPlacement(r.folder))
			}
		}
	}
	return p
}

// distinct is the set of received times of a statement's rows, sorted:
// the partitions it plans (planSettingsSQL).
func distinct(received []int64) []int64 {
	d := slices.Clone(received)
	slices.Sort(d)
	return slices.Compact(d)
}

func optNS(ok bool, ns int64) *int64 {
	if !ok {
		return nil
	}
	return &ns
}

type query struct {
	sql  string
	args []any
}

func batchOf(qs ...query) *pgx.Batch {
	b := &pgx.Batch{}
	for _, q := range qs {
		b.Queue(q.sql, q.args...)
	}
	return b
}

// The COPY sources: one reused slice of values per row.

type messageSource struct {
	b    *appendBatch
	p    *plan
	i    int
	vals [18]any
}

func (s *messageSource) Next() bool { s.i++; return s.i <= len(s.p.newMsgs) }
func (s *messageSource) Err() error { return nil }
func (s *messageSource) Values() ([]any, error) {
	m := &s.p.states[s.i-1]
	id := s.b.msgs[s.p.newMsgs[s.i-1]].id
	s.vals = [18]any{id, m.rxValue(), m.first, m.received(), m.messageID,
		strings.ToLower(mailflow.NormalizeMessageID(m.messageID)), m.sender, domainOf(m.sender), m.subject,
		strings.ToLower(m.subject), m.size, m.direction, m.origIP, inet(m.origIP), m.fromIP, inet(m.fromIP),
		m.msgOutcome.time(), m.msgOutcome.rankValue()}
	return s.vals[:], nil
}

type eventSource struct {
	b        *appendBatch
	events   []int32 // indexes into b.evs
	received []int64 // the received time of each of events
	i        int
	vals     [6]any
	buf      []byte
}

func (s *eventSource) Next() bool { s.i++; return s.i <= len(s.events) }
func (s *eventSource) Err() error { return nil }
func (s *eventSource) Values() ([]any, error) {
	e := &s.b.evs[s.events[s.i-1]]
	// the encoder copies the value into its buffer before the next call
	body, err := e.body(s.buf)
	if err != nil {
		return nil, err
	}
	s.buf = body
	s.vals = [6]any{s.received[s.i-1], e.e.MessageTraceID, e.key, e.rcpt, e.t, body}
	return s.vals[:], nil
}

type rowSource struct {
	rows []newRow
	i    int
	vals [24]any
}

func (s *rowSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *rowSource) Err() error { return nil }
func (s *rowSource) Values() ([]any, error) {
	r := &s.rows[s.i-1]
	m := r.m
	s.vals = [24]any{m.received(), r.id, r.rcpt, domainOf(r.rcpt), m.sender, domainOf(m.sender),
		m.subject, strings.ToLower(m.subject), m.messageID, strings.ToLower(mailflow.NormalizeMessageID(m.messageID)),
		m.size, m.direction, m.origIP, inet(m.origIP), m.fromIP, inet(m.fromIP),
		r.r.toIP, inet(r.r.toIP), r.r.expandedFrom, r.r.o.status(), r.r.o.time(), r.r.o.rankValue(),
		r.r.folder.folder, r.r.folder.time()}
	return s.vals[:], nil
}
