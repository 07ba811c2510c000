package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// message is what the messages table holds for one message.
type message struct {
	receivedExplicit int64 // 0: no event said when it was received
	firstEvent       int64
	sender           string
	subject          string
	messageID        string
	size             int64
	direction        string
	originalClientIP string
	fromIP           string
}

// received is the message's received time: the earliest Received an event
// stated, else the earliest event time.
func (m *message) received() int64 {
	if m.receivedExplicit != 0 {
		return m.receivedExplicit
	}
	return m.firstEvent
}

// merge folds one event's message-level attributes in. Non-empty values
// replace known ones; empty values never erase.
func (m *message) merge(e *mailflow.Event) {
	t := e.Time.UnixNano()
	if m.firstEvent == 0 || t < m.firstEvent {
		m.firstEvent = t
	}
	if !e.Received.IsZero() {
		r := e.Received.UnixNano()
		if m.receivedExplicit == 0 || r < m.receivedExplicit {
			m.receivedExplicit = r
		}
	}
	setStr(&m.sender, mailflow.NormalizeAddress(e.Sender))
	setStr(&m.subject, e.Subject)
	setStr(&m.messageID, strings.TrimSpace(e.MessageID))
	if e.Size != 0 {
		m.size = e.Size
	}
	setStr(&m.direction, string(e.Direction))
	setStr(&m.originalClientIP, e.OriginalClientIP)
	setStr(&m.fromIP, e.FromIP)
}

// receivedExplicitArg is the received_explicit column's value: NULL for none.
func (m *message) receivedExplicitArg() any {
	if m.receivedExplicit != 0 {
		return m.receivedExplicit
	}
	return nil
}

func setStr(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// rowState is the recipient-level part of a row.
type rowState struct {
	outcome      mailflow.Outcome
	toIP         string
	expandedFrom string
	folder       mailflow.Placement // its latest Save (Folder "": none)
}

func (r *rowState) merge(e *mailflow.Event) {
	if s, ok := mailflow.StatusOf(e.Type); ok {
		o := mailflow.Outcome{Status: s, Time: e.Time}
		if o.Supersedes(r.outcome) {
			r.outcome = o
		}
	}
	if p, ok := mailflow.PlacementOf(e); ok && p.Supersedes(r.folder) {
		r.folder = p
	}
	setStr(&r.toIP, e.ToIP)
	setStr(&r.expandedFrom, mailflow.NormalizeAddress(e.ExpandedFrom))
}

// domainOf returns the lower-cased part after the last '@', or "".
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// ipKey encodes an IP so that a prefix is a contiguous BLOB range: one family
// byte (4 or 6) and the address bytes. IPv4-mapped IPv6 addresses are stored
// as IPv4, as mailflow.Query.Match compares them. NULL when there is no usable IP.
func ipKey(s string) any {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return nil
	}
	return ipBytes(a.Unmap())
}

func ipBytes(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append([]byte{4}, b[:]...)
	}
	b := a.As16()
	return append([]byte{6}, b[:]...)
}

// prefixRange returns the first and last key of a prefix.
func prefixRange(p netip.Prefix) (lo, hi []byte) {
	p = p.Masked()
	lo = ipBytes(p.Addr())
	hi = append([]byte(nil), lo...)
	bits := p.Bits()
	for i := 1; i < len(hi); i++ {
		first := (i - 1) * 8
		switch {
		case bits <= first:
			hi[i] = 0xff
		case bits < first+8:
			hi[i] |= byte(0xff >> (bits - first))
		}
	}
	return lo, hi
}

// The statements of an append, prepared once on the writer connection.
// A row's columns are written only when they change, and an UPDATE names
// only the columns it changes: SQLite rewrites the entry of every index
// that holds a column an UPDATE assigns, changed or not, and rows has nine
// b-trees (the table and eight indexes).
const (
	insEventSQL   = `INSERT INTO events (key, mid, mtid, recipient, time, body) VALUES (?,?,?,?,?,?) ON CONFLICT (key) DO NOTHING`
	getMessageSQL = `SELECT mid, received_explicit, first_event, sender, subject, message_id, size, direction, original_client_ip, from_ip FROM messages WHERE mtid = ?`
	// a new message (its number: the last insert's rowid); nothing when it is stored
	insMessageSQL = `INSERT INTO messages (mtid, received_explicit, first_event, received, sender,
	subject, message_id, size, direction, original_client_ip, from_ip) VALUES (?,?,?,?,?,?,?,?,?,?,?)
	ON CONFLICT (mtid) DO NOTHING`
	updMessageSQL = `UPDATE messages SET received_explicit = ?, first_event = ?, received = ?, sender = ?,
	subject = ?, message_id = ?, size = ?, direction = ?, original_client_ip = ?, from_ip = ? WHERE mid = ?`
	getRowSQL = `SELECT id, status, status_time, to_ip, expanded_from, folder, folder_time FROM rows WHERE mid = ? AND recipient = ?`
	insRowSQL = `INSERT INTO rows (mid, mtid, recipient, recipient_domain, received, sender, sender_domain,
	subject, subject_lc, message_id, message_id_lc, size, direction,
	original_client_ip, original_client_ipb, from_ip, from_ipb, to_ip, to_ipb,
	expanded_from, status, status_time, folder, folder_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	// a recipient's own columns: with its status (four indexes hold it), or
	// without; the folder (no index holds it) goes with either
	updRowStatusSQL = `UPDATE rows SET status = ?, status_time = ?, to_ip = ?, to_ipb = ?, expanded_from = ?, folder = ?, folder_time = ? WHERE id = ?`
	updRowSQL       = `UPDATE rows SET to_ip = ?, to_ipb = ?, expanded_from = ?, folder = ?, folder_time = ? WHERE id = ?`
	delRowSQL       = `DELETE FROM rows WHERE id = ?`
)

// msgCol is a message attribute the rows carry: its columns there, and how
// a message gives their values.
type msgCol struct {
	set    string // "col = ?, ..."
	values func(m *message) []any
}

// msgCols, in the order of the bits of a change set (rowsUpdate).
var msgCols = []msgCol{
	{"received = ?", func(m *message) []any { return []any{m.received()} }},
	{"sender = ?, sender_domain = ?", func(m *message) []any { return []any{m.sender, domainOf(m.sender)} }},
	{"subject = ?, subject_lc = ?", func(m *message) []any { return []any{m.subject, strings.ToLower(m.subject)} }},
	{"message_id = ?, message_id_lc = ?", func(m *message) []any { return []any{m.messageID, msgIDKey(m.messageID)} }},
	{"size = ?", func(m *message) []any { return []any{m.size} }},
	{"direction = ?", func(m *message) []any { return []any{m.direction} }},
	{"original_client_ip = ?, original_client_ipb = ?", func(m *message) []any { return []any{m.originalClientIP, ipKey(m.originalClientIP)} }},
	{"from_ip = ?, from_ipb = ?", func(m *message) []any { return []any{m.fromIP, ipKey(m.fromIP)} }},
}

// changed is the set of msgCols whose values differ between a and b.
func changed(a, b *message) uint {
	var c uint
	for i, d := range []bool{a.received() != b.received(), a.sender != b.sender, a.subject != b.subject,
		a.messageID != b.messageID, a.size != b.size, a.direction != b.direction,
		a.originalClientIP != b.originalClientIP, a.fromIP != b.fromIP} {
		if d {
			c |= 1 << i
		}
	}
	return c
}

// appendStmts are the writer connection's prepared statements.
type appendStmts struct {
	insEvent, getMessage, insMessage, updMessage, getRow, insRow, updRowStatus, updRow, delRow *sql.Stmt
}

func (s *Store) stmts(ctx context.Context) (*appendStmts, error) {
	if s.st != nil {
		return s.st, nil
	}
	st := &appendStmts{}
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&st.insEvent, insEventSQL}, {&st.getMessage, getMessageSQL}, {&st.insMessage, insMessageSQL},
		{&st.updMessage, updMessageSQL}, {&st.getRow, getRowSQL}, {&st.insRow, insRowSQL},
		{&st.updRowStatus, updRowStatusSQL}, {&st.updRow, updRowSQL}, {&st.delRow, delRowSQL},
	} {
		stmt, err := s.wdb.PrepareContext(ctx, p.sql)
		if err != nil {
			st.close()
			return nil, err
		}
		*p.dst = stmt
	}
	s.st = st
	return st, nil
}

func (st *appendStmts) close() {
	for _, p := range []*sql.Stmt{st.insEvent, st.getMessage, st.insMessage, st.updMessage, st.getRow, st.insRow,
		st.updRowStatus, st.updRow, st.delRow} {
		if p != nil {
			p.Close()
		}
	}
}

// txStmts are the statements bound to one transaction.
type txStmts struct {
	s                                                                                          *Store
	tx                                                                                         *sql.Tx
	ctx                                                                                        context.Context
	insEvent, getMessage, insMessage, updMessage, getRow, insRow, updRowStatus, updRow, delRow *sql.Stmt
	// UPDATE rows SET <the message columns of a change set> WHERE mid = ?,
	// prepared in the transaction (the writer has one connection) when needed
	rowsUpdates map[uint]*sql.Stmt
}

func (t *txStmts) rowsUpdate(c uint) (*sql.Stmt, error) {
	if p := t.rowsUpdates[c]; p != nil {
		return p, nil
	}
	var sets []string
	for i, col := range msgCols {
		if c&(1<<i) != 0 {
			sets = append(sets, col.set)
		}
	}
	p, err := t.tx.PrepareContext(t.ctx, `UPDATE rows SET `+strings.Join(sets, ", ")+` WHERE mid = ?`)
	if err != nil {
		return nil, err
	}
	if t.rowsUpdates == nil {
		t.rowsUpdates = map[uint]*sql.Stmt{}
	}
	t.rowsUpdates[c] = p
	return p, nil
}

var _ store.Preparer = (*Store)(nil)

// prepared is a batch as Prepare leaves it for AppendPrepared: the events
// copied (their IDs derived, their times in UTC), encoded and grouped by
// message, so that the writer's lock is held for the statements only.
type prepared struct {
	events []mailflow.Event // the batch's copy
	msgs   []prepMessage    // in the order of their first event
}

func (p *prepared) Len() int { return len(p.events) }

// prepMessage is a message's events of a batch, in their order.
type prepMessage struct {
	mtid   string
	events []prepEvent
	all    message    // what they all say of the message
	recips recipients // and of its recipients
}

// prepEvent is an event and the values it is stored with.
type prepEvent struct {
	e         *mailflow.Event
	key, body []byte // its stored key (storedKey) and JSON
	recipient string // mailflow.NormalizeAddress(e.Recipient)
}

// recipients are a message's events grouped by recipient (” for the
// message-level ones), in the order of their first event.
type recipients struct {
	order []string
	by    map[string][]*mailflow.Event
}

func groupRecipients(evs []prepEvent) recipients {
	r := recipients{by: make(map[string][]*mailflow.Event, 4)}
	for i := range evs {
		rc := evs[i].recipient
		if _, ok := r.by[rc]; !ok {
			r.order = append(r.order, rc)
		}
		r.by[rc] = append(r.by[rc], evs[i].e)
	}
	return r
}

// Prepare checks, encodes and groups a batch for AppendPrepared. It needs
// no database, and the ingester calls it while the writer appends the
// batch before (store.Preparer): a third of an event-dense backfill's
// writer time was this.
func (s *Store) Prepare(events []mailflow.Event) (store.Prepared, error) {
	p := &prepared{events: make([]mailflow.Event, len(events))}
	copy(p.events, events)
	idx := make(map[string]int, len(events)/2)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range p.events {
		e := &p.events[i]
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("sqlite: append: event %d: %w", i, err)
		}
		e.ID = e.Key()
		e.Time = e.Time.UTC()
		if !e.Received.IsZero() {
			e.Received = e.Received.UTC()
		}
		buf.Reset()
		if err := enc.Encode(e); err != nil {
			return nil, fmt.Errorf("sqlite: append: event %d: %w", i, err)
		}
		body := buf.Bytes()[:buf.Len()-1] // without Encode's newline
		// the key and the body in one allocation of their size
		kb := storedKey(make([]byte, 0, 8+1+len(e.ID)+len(body)), e.ID, e.Time.UnixNano())
		k := len(kb)
		kb = append(kb, body...)
		m, ok := idx[e.MessageTraceID]
		if !ok {
			m = len(p.msgs)
			idx[e.MessageTraceID] = m
			p.msgs = append(p.msgs, prepMessage{mtid: e.MessageTraceID})
		}
		pm := &p.msgs[m]
		pm.all.merge(e)
		keepForMerge(e)
		pm.events = append(pm.events, prepEvent{e: e, key: kb[:k:k], body: kb[k:], recipient: mailflow.NormalizeAddress(e.Recipient)})
	}
	for i := range p.msgs {
		p.msgs[i].recips = groupRecipients(p.msgs[i].events)
	}
	return p, nil
}

// keepForMerge clears what an encoded event's copy holds that neither the
// message's nor its row's merge reads (message.merge, rowState.merge,
// insertEvents), so that a prepared batch waiting for the writer does not
// keep the strings that its JSON holds already.
func keepForMerge(e *mailflow.Event) {
	*e = mailflow.Event{
		Time: e.Time, MessageTraceID: e.MessageTraceID, Recipient: e.Recipient, Type: e.Type,
		MessageID: e.MessageID, Sender: e.Sender, Subject: e.Subject, Size: e.Size, Direction: e.Direction,
		OriginalClientIP: e.OriginalClientIP, FromIP: e.FromIP, Received: e.Received,
		ToIP: e.ToIP, ExpandedFrom: e.ExpandedFrom, Folder: e.Folder,
	}
}

// Append stores events atomically (one transaction) and idempotently (an
// event whose key is stored already changes nothing).
func (s *Store) Append(ctx context.Context, events []mailflow.Event) error {
	if len(events) == 0 {
		return nil
	}
	p, err := s.Prepare(events)
	if err != nil {
		return err
	}
	return s.AppendPrepared(ctx, p)
}

// AppendPrepared stores a batch Prepare made, as Append does.
func (s *Store) AppendPrepared(ctx context.Context, pb store.Prepared) (err error) {
	p, ok := pb.(*prepared)
	if !ok {
		return fmt.Errorf("sqlite: append: a batch prepared by %T", pb)
	}
	if len(p.events) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	st, err := s.stmts(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// The statements run under ctx without its cancellation: the driver
	// starts a goroutine per statement to watch a cancellable context (a
	// goroutine start and a scheduler wake-up for each of a backfill's
	// millions of statements); the transaction still watches ctx, and rolls
	// back when it ends, so a cancelled Append fails at its next statement.
	sctx := context.WithoutCancel(ctx)
	t := &txStmts{tx: tx, ctx: sctx}
	for _, p := range []struct{ dst, src **sql.Stmt }{
		{&t.insEvent, &st.insEvent}, {&t.getMessage, &st.getMessage}, {&t.insMessage, &st.insMessage},
		{&t.updMessage, &st.updMessage}, {&t.getRow, &st.getRow}, {&t.insRow, &st.insRow},
		{&t.updRowStatus, &st.updRowStatus}, {&t.updRow, &st.updRow}, {&t.delRow, &st.delRow},
	} {
		*p.dst = tx.StmtContext(ctx, *p.src)
	}
	for i := range p.msgs {
		if err := t.applyMessage(&p.msgs[i]); err != nil {
			return fmt.Errorf("sqlite: append: message %s: %w", p.msgs[i].mtid, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append: commit: %w", err)
	}
	return nil
}

// execRows runs p and returns how many rows it changed.
func (t *txStmts) execRows(p *sql.Stmt, args ...any) (int64, error) {
	res, err := p.ExecContext(t.ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// storedRow is a row as applyMessage reads it.
type storedRow struct {
	id    int64
	state rowState
}

// insertEvents stores a message's events and returns those that were not
// stored already (evs itself when that is all of them).
func (t *txStmts) insertEvents(mid int64, evs []prepEvent) ([]prepEvent, error) {
	var fresh []prepEvent
	for i := range evs {
		pe := &evs[i]
		n, err := t.execRows(t.insEvent, pe.key, mid, pe.e.MessageTraceID, pe.recipient, pe.e.Time.UnixNano(), pe.body)
		if err != nil {
			return nil, err
		}
		switch {
		case n == 0 && fresh == nil:
			fresh = append(make([]prepEvent, 0, len(evs)), evs[:i]...)
		case n != 0 && fresh != nil:
			fresh = append(fresh, *pe)
		}
	}
	if fresh == nil {
		return evs, nil
	}
	return fresh, nil
}

// applyMessage stores a message's events of a batch and folds the new ones
// into its message and row records.
func (t *txStmts) applyMessage(pm *prepMessage) error {
	ctx := t.ctx
	mtid, evs := pm.mtid, pm.events
	m := pm.all // what the events say of the message
	// A new message is inserted without reading first (most messages of a
	// batch are new, and the read was 6% of an event-dense ingest); the
	// INSERT gives its number (its rowid, read as the last insert's: an
	// Exec, not a query with RETURNING, whose output SQLite gathers in a
	// table of its own before the first row; the query cost the dense
	// backfill 15% of its time), or changes nothing if the message is stored,
	// and then it is read and its new events merged into it. Its number
	// comes before its events: they are stored under it.
	res, err := t.insMessage.ExecContext(ctx, mtid, m.receivedExplicitArg(), m.firstEvent, m.received(), m.sender,
		m.subject, m.messageID, m.size, m.direction, m.originalClientIP, m.fromIP)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	exists := n == 0
	var mid int64
	if !exists {
		if mid, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	var old message
	if exists {
		var rexp sql.NullInt64
		if err := t.getMessage.QueryRowContext(ctx, mtid).Scan(&mid, &rexp, &old.firstEvent, &old.sender, &old.subject,
			&old.messageID, &old.size, &old.direction, &old.originalClientIP, &old.fromIP); err != nil {
			return err
		}
		old.receivedExplicit = rexp.Int64
	}
	fresh, err := t.insertEvents(mid, evs)
	if err != nil {
		return err
	}
	if len(fresh) == 0 {
		if !exists {
			// every event was stored already, under another trace ID: an
			// append stores what its new events say, and they say nothing
			_, err := t.tx.ExecContext(ctx, `DELETE FROM messages WHERE mid = ?`, mid)
			return err
		}
		return nil // a batch stored before (a replay)
	}
	recips := pm.recips
	if exists || len(fresh) < len(evs) {
		// the stored message (none, for a new one) and the new events
		m = old
		for i := range fresh {
			m.merge(fresh[i].e)
		}
		if !exists || m != old {
			if _, err := t.updMessage.ExecContext(ctx, m.receivedExplicitArg(), m.firstEvent, m.received(), m.sender,
				m.subject, m.messageID, m.size, m.direction, m.originalClientIP, m.fromIP, mid); err != nil {
				return err
			}
		}
		// the message's columns on its rows, those that changed
		if c := changed(&m, &old); exists && c != 0 {
			p, err := t.rowsUpdate(c)
			if err != nil {
				return err
			}
			var args []any
			for i, col := range msgCols {
				if c&(1<<i) != 0 {
					args = append(args, col.values(&m)...)
				}
			}
			if _, err := p.ExecContext(ctx, append(args, mid)...); err != nil {
				return err
			}
		}
		if len(fresh) < len(evs) {
			recips = groupRecipients(fresh)
		}
	}

	// The placeholder row (recipient '') exists while the message has no
	// recipient row, and only then.
	hasRecipients := len(recips.order) > 1 || (len(recips.order) == 1 && recips.order[0] != "")
	var placeholder *storedRow
	if exists {
		var err error
		if placeholder, err = t.storedRow(mid, ""); err != nil {
			return err
		}
		if placeholder != nil && hasRecipients {
			if _, err := t.delRow.ExecContext(ctx, placeholder.id); err != nil {
				return err
			}
			placeholder = nil
		}
		if placeholder == nil {
			hasRecipients = true // stored ones, or this batch's
		}
	}
	for _, r := range recips.order {
		if r == "" && hasRecipients {
			continue // message-level events: the placeholder is not needed
		}
		var cur *storedRow
		if r == "" {
			cur = placeholder
		} else if exists {
			var err error
			if cur, err = t.storedRow(mid, r); err != nil {
				return err
			}
		}
		next := rowState{outcome: mailflow.Outcome{Status: mailflow.StatusGettingStatus}}
		if cur != nil {
			next = cur.state
		}
		for _, e := range recips.by[r] {
			next.merge(e)
		}
		var stime, ftime int64
		if next.outcome.Status != mailflow.StatusGettingStatus {
			stime = next.outcome.Time.UnixNano()
		}
		if next.folder.Folder != "" {
			ftime = next.folder.Time.UnixNano()
		}
		switch {
		case cur == nil:
			if _, err := t.insRow.ExecContext(ctx, mid, mtid, r, domainOf(r), m.received(), m.sender, domainOf(m.sender),
				m.subject, strings.ToLower(m.subject), m.messageID, msgIDKey(m.messageID), m.size, m.direction,
				m.originalClientIP, ipKey(m.originalClientIP), m.fromIP, ipKey(m.fromIP), next.toIP, ipKey(next.toIP),
				next.expandedFrom, string(next.outcome.Status), stime, next.folder.Folder, ftime); err != nil {
				return err
			}
		case next.outcome != cur.state.outcome:
			if _, err := t.updRowStatus.ExecContext(ctx, string(next.outcome.Status), stime,
				next.toIP, ipKey(next.toIP), next.expandedFrom, next.folder.Folder, ftime, cur.id); err != nil {
				return err
			}
		case next != cur.state:
			if _, err := t.updRow.ExecContext(ctx, next.toIP, ipKey(next.toIP), next.expandedFrom, next.folder.Folder, ftime, cur.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// storedRow reads the (message, recipient) row, nil when there is none.
func (t *txStmts) storedRow(mid int64, r string) (*storedRow, error) {
	var sr storedRow
	var status string
	var stime, ftime int64
	err := t.getRow.QueryRowContext(t.ctx, mid, r).Scan(&sr.id, &status, &stime, &sr.state.toIP, &sr.state.expandedFrom,
		&sr.state.folder.Folder, &ftime)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	sr.state.outcome = mailflow.Outcome{Status: mailflow.Status(status), Time: fromNanos(stime)}
	if sr.state.folder.Folder != "" {
		sr.state.folder.Time = fromNanos(ftime)
	}
	return &sr, nil
}

// storedKey appends the form an event's key is stored in (the events
// table's UNIQUE key column, migration 00004) to dst: 8 bytes of the
// event's time (unix ns, big-endian) so that new keys go to the end of
// the index, a tag byte, and the key: 0 and its 16 bytes for a 32-digit
// lower-case hex key (mailflow.Event.Key's), 1 and the key as it is else.
func storedKey(dst []byte, key string, t int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t))
	if isHexKey(key) {
		dst = append(dst, 0)
		dst, _ = hex.AppendDecode(dst, []byte(key)) // isHexKey: no error
		return dst
	}
	dst = append(dst, 1)
	return append(dst, key...)
}

// isHexKey reports whether key is 32 lower-case hex digits.
func isHexKey(key string) bool {
	if len(key) != 32 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// msgIDKey is the form message IDs are compared in.
func msgIDKey(id string) string { return strings.ToLower(mailflow.NormalizeMessageID(id)) }
