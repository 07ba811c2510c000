package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mailtrace/mailtrace/internal/mailflow"
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
}

func (r *rowState) merge(e *mailflow.Event) {
	if s, ok := mailflow.StatusOf(e.Type); ok {
		o := mailflow.Outcome{Status: s, Time: e.Time}
		if o.Supersedes(r.outcome) {
			r.outcome = o
		}
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

const upsertRow = `INSERT INTO rows (mtid, recipient, recipient_domain, received, sender, sender_domain,
	subject, subject_lc, message_id, message_id_lc, size, direction,
	original_client_ip, original_client_ipb, from_ip, from_ipb, to_ip, to_ipb,
	expanded_from, status, status_time)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (mtid, recipient) DO UPDATE SET
	received = excluded.received, sender = excluded.sender, sender_domain = excluded.sender_domain,
	subject = excluded.subject, subject_lc = excluded.subject_lc,
	message_id = excluded.message_id, message_id_lc = excluded.message_id_lc,
	size = excluded.size, direction = excluded.direction,
	original_client_ip = excluded.original_client_ip, original_client_ipb = excluded.original_client_ipb,
	from_ip = excluded.from_ip, from_ipb = excluded.from_ipb,
	to_ip = excluded.to_ip, to_ipb = excluded.to_ipb, expanded_from = excluded.expanded_from,
	status = excluded.status, status_time = excluded.status_time`

const updateMessageRows = `UPDATE rows SET received = ?, sender = ?, sender_domain = ?,
	subject = ?, subject_lc = ?, message_id = ?, message_id_lc = ?, size = ?, direction = ?,
	original_client_ip = ?, original_client_ipb = ?, from_ip = ?, from_ipb = ?
WHERE mtid = ?`

const upsertMessage = `INSERT INTO messages (mtid, received_explicit, first_event, received, sender,
	subject, message_id, size, direction, original_client_ip, from_ip)
VALUES (?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (mtid) DO UPDATE SET received_explicit = excluded.received_explicit,
	first_event = excluded.first_event, received = excluded.received, sender = excluded.sender,
	subject = excluded.subject, message_id = excluded.message_id, size = excluded.size,
	direction = excluded.direction, original_client_ip = excluded.original_client_ip,
	from_ip = excluded.from_ip`

type appendStmts struct {
	insEvent, getMessage, putMessage, getRow, putRow, updRows, anyRecip, delPlaceholder *sql.Stmt
}

func prepare(ctx context.Context, tx *sql.Tx) (*appendStmts, error) {
	var st appendStmts
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&st.insEvent, `INSERT INTO events (key, mtid, recipient, time, body) VALUES (?,?,?,?,?) ON CONFLICT (key) DO NOTHING`},
		{&st.getMessage, `SELECT received_explicit, first_event, sender, subject, message_id, size, direction, original_client_ip, from_ip FROM messages WHERE mtid = ?`},
		{&st.putMessage, upsertMessage},
		{&st.getRow, `SELECT status, status_time, to_ip, expanded_from FROM rows WHERE mtid = ? AND recipient = ?`},
		{&st.putRow, upsertRow},
		{&st.updRows, updateMessageRows},
		{&st.anyRecip, `SELECT 1 FROM rows WHERE mtid = ? AND recipient <> '' LIMIT 1`},
		{&st.delPlaceholder, `DELETE FROM rows WHERE mtid = ? AND recipient = ''`},
	} {
		s, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			return nil, err
		}
		*p.dst = s
	}
	return &st, nil
}

// Append stores events atomically (one transaction) and idempotently (an
// event whose key is stored already changes nothing).
func (s *Store) Append(ctx context.Context, events []mailflow.Event) (err error) {
	if len(events) == 0 {
		return nil
	}
	for i := range events {
		if err := events[i].Validate(); err != nil {
			return fmt.Errorf("sqlite: append: event %d: %w", i, err)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	st, err := prepare(ctx, tx)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}

	// Store the events; keep the new ones, grouped by message.
	var order []string
	byMsg := map[string][]*mailflow.Event{}
	for i := range events {
		e := events[i]
		e.ID = e.Key()
		e.Time = e.Time.UTC()
		if !e.Received.IsZero() {
			e.Received = e.Received.UTC()
		}
		body, err := json.Marshal(&e)
		if err != nil {
			return fmt.Errorf("sqlite: append: %w", err)
		}
		res, err := st.insEvent.ExecContext(ctx, e.ID, e.MessageTraceID, mailflow.NormalizeAddress(e.Recipient), e.Time.UnixNano(), string(body))
		if err != nil {
			return fmt.Errorf("sqlite: append: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		if _, ok := byMsg[e.MessageTraceID]; !ok {
			order = append(order, e.MessageTraceID)
		}
		byMsg[e.MessageTraceID] = append(byMsg[e.MessageTraceID], &e)
	}
	for _, mtid := range order {
		if err := applyMessage(ctx, st, mtid, byMsg[mtid]); err != nil {
			return fmt.Errorf("sqlite: append: message %s: %w", mtid, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append: commit: %w", err)
	}
	return nil
}

// applyMessage folds a message's new events into its message and row records.
func applyMessage(ctx context.Context, st *appendStmts, mtid string, evs []*mailflow.Event) error {
	var old message
	var rexp sql.NullInt64
	exists := true
	err := st.getMessage.QueryRowContext(ctx, mtid).Scan(&rexp, &old.firstEvent, &old.sender, &old.subject,
		&old.messageID, &old.size, &old.direction, &old.originalClientIP, &old.fromIP)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		exists = false
	case err != nil:
		return err
	}
	old.receivedExplicit = rexp.Int64
	m := old
	var recips []string
	byRecip := map[string][]*mailflow.Event{}
	for _, e := range evs {
		m.merge(e)
		r := mailflow.NormalizeAddress(e.Recipient)
		if _, ok := byRecip[r]; !ok {
			recips = append(recips, r)
		}
		byRecip[r] = append(byRecip[r], e)
	}
	if !exists || m != old {
		var re any
		if m.receivedExplicit != 0 {
			re = m.receivedExplicit
		}
		if _, err := st.putMessage.ExecContext(ctx, mtid, re, m.firstEvent, m.received(), m.sender,
			m.subject, m.messageID, m.size, m.direction, m.originalClientIP, m.fromIP); err != nil {
			return err
		}
	}
	if exists && m != old {
		if _, err := st.updRows.ExecContext(ctx, m.received(), m.sender, domainOf(m.sender),
			m.subject, strings.ToLower(m.subject), m.messageID, msgIDKey(m.messageID), m.size, m.direction,
			m.originalClientIP, ipKey(m.originalClientIP), m.fromIP, ipKey(m.fromIP), mtid); err != nil {
			return err
		}
	}

	hasRecipients := len(recips) > 1 || (len(recips) == 1 && recips[0] != "")
	if exists {
		if hasRecipients {
			if _, err := st.delPlaceholder.ExecContext(ctx, mtid); err != nil {
				return err
			}
		} else {
			var one int
			switch err := st.anyRecip.QueryRowContext(ctx, mtid).Scan(&one); {
			case err == nil:
				hasRecipients = true
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
	}
	for _, r := range recips {
		if r == "" && hasRecipients {
			continue // message-level events: the placeholder is not needed
		}
		cur := rowState{outcome: mailflow.Outcome{Status: mailflow.StatusGettingStatus}}
		if exists {
			var status string
			var stime int64
			err := st.getRow.QueryRowContext(ctx, mtid, r).Scan(&status, &stime, &cur.toIP, &cur.expandedFrom)
			switch {
			case err == nil:
				cur.outcome = mailflow.Outcome{Status: mailflow.Status(status), Time: fromNanos(stime)}
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		for _, e := range byRecip[r] {
			cur.merge(e)
		}
		var stime int64
		if cur.outcome.Status != mailflow.StatusGettingStatus {
			stime = cur.outcome.Time.UnixNano()
		}
		if _, err := st.putRow.ExecContext(ctx, mtid, r, domainOf(r), m.received(), m.sender, domainOf(m.sender),
			m.subject, strings.ToLower(m.subject), m.messageID, msgIDKey(m.messageID), m.size, m.direction,
			m.originalClientIP, ipKey(m.originalClientIP), m.fromIP, ipKey(m.fromIP), cur.toIP, ipKey(cur.toIP),
			cur.expandedFrom, string(cur.outcome.Status), stime); err != nil {
			return err
		}
	}
	return nil
}

// msgIDKey is the form message IDs are compared in.
func msgIDKey(id string) string { return strings.ToLower(mailflow.NormalizeMessageID(id)) }
