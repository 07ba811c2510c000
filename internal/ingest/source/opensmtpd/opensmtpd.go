// Package opensmtpd is the ingest's source for OpenSMTPD's logs (program
// "smtpd"; Postfix's smtpd is "postfix/smtpd"), versions 6 and 7.
//
// OpenSMTPD logs a session id on each line of an SMTP session (its client,
// its authentication, "smtp message msgid=..." for each message it
// accepts, "smtp envelope evpid=..." for each recipient, "smtp
// failed-command" for a refused command), and an envelope id per
// recipient on each delivery attempt ("mta delivery evpid=..." relayed,
// "mda delivery evpid=..." delivered on this host, result Ok, TempFail or
// PermFail). An envelope id's first 8 hex digits are its message id: a
// message is its msgid on a host, a recipient its envelope. A refused
// RCPT is a message of its own, as Postfix's NOQUEUE rejects are; the
// queue's "Expire for EVPID" fails the envelope. Recipients rewritten by
// an alias ("to=<member> rcpt=<alias>") make the alias's row Expanded.
//
// # Trace IDs and restarts
//
// A msgid is 32 random bits, reused sooner or later, so a message's trace
// ID is a digest of host, msgid and the time of its first line; State
// carries it (with the sessions' clients) across a restart.
package opensmtpd

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"crypto/sha256"
	"encoding/hex"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Reasons a line of OpenSMTPD's is not understood.
const (
	ReasonUnknownLine = "unknown opensmtpd line"
)

// Source correlates OpenSMTPD's lines (source.Source).
type Source struct {
	cfg      source.Config
	env      *source.Env
	msgs     map[string]*message // host\x00msgid
	sessions map[string]*session // host\x00session id
	// the messages in flight, most recently active first, and the trace
	// IDs of messages evicted over the cap, by key, in a ring of at most
	// Config.MaxEvicted
	inFlight source.LRU[message]
	evicted  *source.Ring[string, evicted]
}

type session struct {
	ClientIP   string    `json:"clientIp,omitempty"`
	ClientName string    `json:"clientName,omitempty"`
	User       string    `json:"user,omitempty"`
	Local      bool      `json:"local,omitempty"`
	Seen       time.Time `json:"seen"`
}

type message struct {
	Host        string                     `json:"host"`
	MsgID       string                     `json:"msgid"`
	TraceID     string                     `json:"traceId"`
	First       time.Time                  `json:"first"`
	Last        time.Time                  `json:"last"`
	Sender      string                     `json:"sender,omitempty"`
	SenderKnown bool                       `json:"senderKnown,omitempty"`
	Size        int64                      `json:"size,omitempty"`
	ClientIP    string                     `json:"clientIp,omitempty"`
	ClientName  string                     `json:"clientName,omitempty"`
	User        string                     `json:"user,omitempty"`
	Local       bool                       `json:"local,omitempty"`
	Received    bool                       `json:"received,omitempty"` // its smtp message line seen
	AnyIn       bool                       `json:"anyIn,omitempty"`
	AnyOut      bool                       `json:"anyOut,omitempty"`
	Counted     bool                       `json:"counted,omitempty"`
	Status      map[string]mailflow.Status `json:"status,omitempty"`
	Expanded    map[string]bool            `json:"expanded,omitempty"` // aliases whose Expand was emitted
	lru         source.LRUNode[message]
}

type evicted struct {
	traceID string
	flags   uint8
}

const (
	evAnyIn uint8 = 1 << iota
	evAnyOut
	evOrg
	evSenderKnown
)

// New returns the OpenSMTPD source.
func New(cfg source.Config, env *source.Env) source.Source {
	return &Source{cfg: cfg, env: env, msgs: map[string]*message{}, sessions: map[string]*session{}, evicted: source.NewRing[string, evicted](cfg.MaxEvicted)}
}

// Prepare claims smtpd's lines (OpenSMTPD's program) and ignores, by a
// few byte comparisons, those that carry nothing for a trace (TLS, the
// mta's connections, disconnections).
func (c *Source) Prepare(program, msg string) (source.Verdict, bool) {
	if program != "smtpd" && program != "opensmtpd" {
		return source.Verdict{}, false
	}
	v := source.Verdict{Daemon: "smtpd"}
	if len(msg) > 17 && msg[16] == ' ' {
		rest := msg[17:]
		switch {
		case strings.HasPrefix(rest, "smtp connected "), strings.HasPrefix(rest, "smtp authentication "), strings.HasPrefix(rest, "smtp message "),
			strings.HasPrefix(rest, "smtp envelope "), strings.HasPrefix(rest, "smtp failed-command "), strings.HasPrefix(rest, "smtp event="):
			v.Daemon = "smtp"
		case strings.HasPrefix(rest, "mta delivery "), strings.HasPrefix(rest, "mta event=delivery "):
			v.Daemon = "mta"
		case strings.HasPrefix(rest, "mda delivery "), strings.HasPrefix(rest, "mda event=delivery "):
			v.Daemon = "mda"
		default:
			v.Ignore = true
		}
		return v, true
	}
	v.Ignore = !(strings.HasPrefix(msg, "relay: ") || strings.HasPrefix(msg, "delivery: "))
	return v, true
}

// TraceID returns the trace ID of msgid on host while the source remembers it.
func (c *Source) TraceID(host, msgid string) string {
	if m := c.msgs[host+"\x00"+msgid]; m != nil {
		return m.TraceID
	}
	if r := c.evicted.Peek(host + "\x00" + msgid); r != nil {
		return r.traceID
	}
	return ""
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}

func eventID(host, key string, t time.Time, raw string, typ mailflow.EventType, rcpt string) string {
	h := sha256.New()
	for _, p := range []string{host, key, strconv.FormatInt(t.UnixNano(), 10), raw, string(typ), mailflow.NormalizeAddress(rcpt)} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Consume reads one line Prepare claimed.
func (c *Source) Consume(l *source.Line) {
	r := Parse(l.Message)
	used := true
	switch r.Kind {
	case KindIgnored:
		c.env.Stats.Ignored++
		return
	case KindUnknown:
		c.env.Stats.Skip(ReasonUnknownLine)
		return
	case KindConnected:
		ip := r.Field("address")
		s := &session{ClientName: r.Field("host"), Seen: l.UTC}
		if ip == "local" {
			s.Local = true
		} else {
			s.ClientIP = ip
		}
		c.sessions[l.Host+"\x00"+r.Session] = s
	case KindAuth:
		if s := c.sessions[l.Host+"\x00"+r.Session]; s != nil && r.Field("result") == "ok" {
			s.User = r.Field("user")
		}
	case KindMessage:
		c.received(l, r)
	case KindEnvelope:
		m := c.get(l.Host, r.MsgID, l.UTC, r.Session)
		if f, ok := r.Fields["from"]; ok && !m.SenderKnown {
			m.Sender, m.SenderKnown = mailflow.NormalizeAddress(f), true
		}
		if to := mailflow.NormalizeAddress(r.Field("to")); to != "" {
			if _, seen := m.Status[to]; !seen {
				m.Status[to] = ""
			}
			c.place(m, to)
		}
	case KindDelivery:
		used = c.delivery(l, r)
	case KindFailedCommand:
		used = c.failed(l, r)
	case KindExpire:
		used = c.expire(l, r)
	}
	if used {
		c.env.Stats.Used++
	} else {
		c.env.Stats.Ignored++
	}
	c.capInFlight()
}

// place notes where a recipient is, for the direction.
func (c *Source) place(m *message, rcpt string) {
	if source.Inside(c.cfg.AcceptedDomains, rcpt) {
		m.AnyIn = true
	} else {
		m.AnyOut = true
	}
}

// get returns the message msgid on host, new from its session's client
// when unknown.
func (c *Source) get(host, msgid string, t time.Time, sessionID string) *message {
	k := host + "\x00" + msgid
	m := c.msgs[k]
	if m == nil {
		m = &message{Host: host, MsgID: msgid, First: t, Last: t, Status: map[string]mailflow.Status{}}
		if r, ok := c.evicted.Take(k); ok {
			m.TraceID, m.Counted = r.traceID, true
			m.AnyIn, m.AnyOut, m.SenderKnown = r.flags&evAnyIn != 0, r.flags&evAnyOut != 0, r.flags&evSenderKnown != 0
			m.Local = r.flags&evOrg != 0
		} else {
			m.TraceID = digest(host, msgid, t.UTC().Format(time.RFC3339Nano))
		}
		if s := c.sessions[host+"\x00"+sessionID]; s != nil && sessionID != "" {
			m.ClientIP, m.ClientName, m.User, m.Local = s.ClientIP, s.ClientName, s.User, s.Local
		}
		c.msgs[k] = m
	}
	c.inFlight.Touch(&m.lru, m)
	if t.After(m.Last) {
		m.Last = t
	}
	return m
}

func (c *Source) newEvent(m *message, t time.Time, raw string, typ mailflow.EventType, rcpt, daemon string) mailflow.Event {
	return mailflow.Event{ID: eventID(m.Host, m.MsgID, t, raw, typ, rcpt), Time: t, Recipient: mailflow.NormalizeAddress(rcpt),
		Type: typ, Source: daemon, ServerHostname: m.Host}
}

func (c *Source) add(m *message, e mailflow.Event) {
	if !m.Counted {
		m.Counted = true
		c.env.Stats.Messages++
	}
	e.MessageTraceID = m.TraceID
	e.Sender = m.Sender
	e.Size = m.Size
	e.Received = m.First
	if m.ClientIP != "" && !source.IsLoopback(m.ClientIP) && validIP(m.ClientIP) {
		e.FromIP, e.OriginalClientIP = m.ClientIP, m.ClientIP
	}
	if e.ClientIP != "" && !validIP(e.ClientIP) {
		e.ClientIP = ""
	}
	if e.ToIP != "" && !validIP(e.ToIP) {
		e.ToIP = ""
	}
	// (OpenSMTPD does not log MAIL FROM: a refused RCPT's sender is
	// unknown, its client decides)
	e.Direction = source.Direction(fromOrg(c.cfg.AcceptedDomains, m.Sender, m.ClientIP, m.User, m.Local), m.AnyIn, m.AnyOut)
	c.env.Emit(e)
}

// received handles "smtp message": the message accepted.
func (c *Source) received(l *source.Line, r Record) {
	m := c.get(l.Host, r.MsgID, l.UTC, r.Session)
	m.Received = true
	m.Size, _ = strconv.ParseInt(r.Field("size"), 10, 64)
	if s := c.sessions[l.Host+"\x00"+r.Session]; s != nil && m.ClientIP == "" && !m.Local {
		m.ClientIP, m.ClientName, m.User, m.Local = s.ClientIP, s.ClientName, s.User, s.Local
	}
	e := c.newEvent(m, l.UTC, l.Raw, mailflow.EventReceive, "", "smtp")
	e.ClientIP, e.ClientHostname = m.ClientIP, m.ClientName
	from := m.ClientName + "[" + m.ClientIP + "]"
	if m.Local {
		from = "a local submission"
	}
	e.Detail = fmt.Sprintf("received from %s as message %s (%s, %s recipients)", from, r.MsgID, r.Field("proto"), r.Field("nrcpt"))
	if m.User != "" {
		e.Detail += ", authenticated as " + m.User
	}
	c.add(m, e)
}

// delivery handles an mta or mda delivery attempt's result.
func (c *Source) delivery(l *source.Line, r Record) bool {
	typ, ok := resultType(r.Field("result"))
	if !ok {
		c.env.Stats.Skip(ReasonUnknownLine)
		return false
	}
	m := c.get(l.Host, r.MsgID, l.UTC, "")
	if f, ok := r.Fields["from"]; ok && !m.SenderKnown {
		m.Sender, m.SenderKnown = mailflow.NormalizeAddress(f), true
		if m.Sender == "" && !m.Received {
			m.Local = true // a bounce of the server's own
		}
	}
	to := mailflow.NormalizeAddress(r.Field("to"))
	orig := mailflow.NormalizeAddress(r.Field("rcpt"))
	if orig == "-" || orig == to {
		orig = ""
	}
	c.place(m, to)
	if orig != "" && !m.Expanded[orig] {
		if m.Expanded == nil {
			m.Expanded = map[string]bool{}
		}
		m.Expanded[orig] = true
		x := c.newEvent(m, l.UTC, l.Raw, mailflow.EventExpand, orig, r.Component)
		x.Detail = fmt.Sprintf("%s was rewritten or expanded to %s", orig, to)
		m.Status[orig] = mailflow.StatusExpanded
		c.add(m, x)
	}
	stat := r.Field("stat")
	e := c.newEvent(m, l.UTC, l.Raw, typ, to, r.Component)
	e.DSN = resultDSN(typ, stat)
	e.SMTPResponse = stat
	e.ExpandedFrom = orig
	if rel := r.Field("relay"); rel != "" {
		e.Relay, e.ToIP = relayOf(rel)
	} else if r.Component == "mda" {
		e.Relay = "mda"
	}
	e.Detail = fmt.Sprintf("%s delivery %s (evpid %s, delay %s): %s", r.Component, r.Field("result"), r.EvpID, r.Field("delay"), stat)
	m.Status[to], _ = mailflow.StatusOf(typ)
	c.add(m, e)
	return true
}

// failed handles a refused command: at RCPT, a message of its own for the
// recipient; at DATA, a refusal of the session's message.
func (c *Source) failed(l *source.Line, r Record) bool {
	stage, addr, dsn, typ, ok := commandReject(r.Field("command"), r.Field("result"), func(a string) bool { return !source.Inside(c.cfg.AcceptedDomains, a) })
	if !ok {
		return false
	}
	s := c.sessions[l.Host+"\x00"+r.Session]
	m := &message{Host: l.Host, MsgID: "reject-" + digest(l.Raw)[:12], First: l.UTC, Last: l.UTC, Status: map[string]mailflow.Status{}}
	m.TraceID = digest(l.Host, m.MsgID)
	if s != nil {
		m.ClientIP, m.ClientName, m.User, m.Local = s.ClientIP, s.ClientName, s.User, s.Local
	}
	if stage == "MAIL" {
		m.Sender, m.SenderKnown = mailflow.NormalizeAddress(addr), true
	}
	e := c.newEvent(m, l.UTC, l.Raw, mailflow.EventReceive, "", "smtp")
	e.ClientIP, e.ClientHostname = m.ClientIP, m.ClientName
	e.Detail = fmt.Sprintf("%s refused from %s[%s] before queueing", r.Field("command"), m.ClientName, m.ClientIP)
	c.add(m, e)
	rcpt := ""
	if stage == "RCPT" {
		rcpt = addr
		c.place(m, mailflow.NormalizeAddress(addr))
	}
	x := c.newEvent(m, l.UTC, l.Raw, typ, rcpt, "smtp")
	x.DSN, x.SMTPResponse = dsn, r.Field("result")
	x.ClientIP, x.ClientHostname = m.ClientIP, m.ClientName
	x.Detail = fmt.Sprintf("refused %s: %s", r.Field("command"), r.Field("result"))
	c.add(m, x)
	return true
}

// expire handles the queue's giving up on an envelope.
func (c *Source) expire(l *source.Line, r Record) bool {
	m := c.get(l.Host, r.MsgID, l.UTC, "")
	if f, ok := r.Fields["from"]; ok && !m.SenderKnown {
		m.Sender, m.SenderKnown = mailflow.NormalizeAddress(f), true
	}
	to := mailflow.NormalizeAddress(r.Field("to"))
	if to == "" {
		return false
	}
	c.place(m, to)
	e := c.newEvent(m, l.UTC, l.Raw, mailflow.EventFail, to, "queue")
	e.DSN = expireDSN(r.Prefix)
	e.Detail = fmt.Sprintf("%s (evpid %s, delay %s): %s", strings.ToLower(r.Prefix), r.EvpID, r.Field("delay"), r.Field("stat"))
	m.Status[to] = mailflow.StatusFailed
	c.add(m, e)
	return true
}

// finished reports whether every recipient of m has its final status.
func (m *message) finished() bool {
	if len(m.Status) == 0 {
		return false
	}
	for _, s := range m.Status {
		if s != mailflow.StatusDelivered && s != mailflow.StatusFailed && s != mailflow.StatusExpanded {
			return false
		}
	}
	return true
}

// Sweep forgets finished messages after ForgetAfter, idle ones after
// MaxIdle, and sessions after an hour.
func (c *Source) Sweep() {
	if len(c.msgs) == 0 && len(c.sessions) == 0 {
		return // no OpenSMTPD line read: most logs (every 10 s of log time)
	}
	for _, m := range c.msgs {
		if (m.finished() && c.env.Now.Sub(m.Last) > c.cfg.ForgetAfter) || c.env.Now.Sub(m.Last) > c.cfg.MaxIdle {
			c.drop(m)
		}
	}
	for k, s := range c.sessions {
		if c.env.Now.Sub(s.Seen) > time.Hour {
			delete(c.sessions, k)
		}
	}
}

// Flush holds nothing: every event is emitted as its line is read.
func (c *Source) Flush() {}

func (c *Source) drop(m *message) {
	delete(c.msgs, m.Host+"\x00"+m.MsgID)
	c.inFlight.Remove(&m.lru)
}

// capInFlight evicts the least recently active messages over
// Config.MaxInFlight, keeping their trace IDs (and what decides their
// direction) for late lines, at most Config.MaxEvicted of them.
func (c *Source) capInFlight() {
	for m := c.inFlight.Over(len(c.msgs), c.cfg.MaxInFlight); m != nil; m = c.inFlight.Over(len(c.msgs), c.cfg.MaxInFlight) {
		c.drop(m)
		c.env.Stats.Evicted++
		if c.cfg.MaxEvicted <= 0 {
			continue
		}
		var f uint8
		if m.AnyIn {
			f |= evAnyIn
		}
		if m.AnyOut {
			f |= evAnyOut
		}
		if fromOrg(c.cfg.AcceptedDomains, m.Sender, m.ClientIP, m.User, m.Local) {
			f |= evOrg
		}
		if m.SenderKnown {
			f |= evSenderKnown
		}
		c.evicted.Put(m.Host+"\x00"+m.MsgID, evicted{traceID: m.TraceID, flags: f})
	}
}

// State is what the source knows in flight: messages, sessions, evicted
// messages' trace IDs.
type State struct {
	Messages []*message         `json:"messages,omitempty"`
	Sessions map[string]session `json:"sessions,omitempty"`
	Evicted  []EvictedState     `json:"evicted,omitempty"`
}

// EvictedState is an evicted message's record.
type EvictedState struct {
	Key     string `json:"key"`
	TraceID string `json:"traceId"`
	Flags   uint8  `json:"flags,omitempty"`
}

// State returns a snapshot as JSON.
func (c *Source) State() (json.RawMessage, error) {
	st := State{Sessions: map[string]session{}}
	for _, m := range c.msgs {
		st.Messages = append(st.Messages, m)
	}
	sort.Slice(st.Messages, func(i, j int) bool {
		return st.Messages[i].Host+st.Messages[i].MsgID < st.Messages[j].Host+st.Messages[j].MsgID
	})
	for k, s := range c.sessions {
		st.Sessions[k] = *s
	}
	for k, r := range c.evicted.All() {
		st.Evicted = append(st.Evicted, EvictedState{Key: k, TraceID: r.traceID, Flags: r.flags})
	}
	return json.Marshal(st)
}

// Restore loads a snapshot into a source that has read nothing.
func (c *Source) Restore(b json.RawMessage) error {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return errors.New("ingest: opensmtpd state: " + err.Error())
	}
	if len(c.msgs) != 0 || len(c.sessions) != 0 {
		return errors.New("ingest: Restore on an opensmtpd source that has read lines")
	}
	for _, m := range st.Messages {
		if m == nil || m.MsgID == "" || m.TraceID == "" {
			return errors.New("ingest: opensmtpd state: a message without its ids")
		}
		if m.Status == nil {
			m.Status = map[string]mailflow.Status{}
		}
		c.msgs[m.Host+"\x00"+m.MsgID] = m
		c.inFlight.Touch(&m.lru, m)
	}
	for k, s := range st.Sessions {
		c.sessions[k] = &s
	}
	for _, e := range st.Evicted {
		c.evicted.Put(e.Key, evicted{traceID: e.TraceID, flags: e.Flags})
	}
	return nil
}
