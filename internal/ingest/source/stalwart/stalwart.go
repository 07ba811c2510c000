// Package stalwart is the ingest's source for Stalwart, the all-in-one
// mail server, from its text tracer's events (the log file, the console
// under journald or in a container's log, and its OpenTelemetry exporter,
// whose records the ingester writes as the same lines: see
// internal/ingest/server/otlp.go).
//
// Stalwart names every message by a queue id, a 64-bit number it never
// reuses, and logs it on every event of the message's life: queued
// (queue.queue-message), each delivery attempt (delivery.attempt-start
// with the sender and the recipients still pending) and what happened to
// each recipient in it (delivery.delivered, delivery.rcpt-to-rejected,
// the failures of a domain), the status notifications it logs for every
// recipient whose status is final (delivery.dsn-success, -perm-fail, and
// -temp-fail once a delay notice is due), a retry scheduled
// (queue.rescheduled), local delivery into a mailbox
// (message-ingest.ham, .spam) and the end (delivery.completed). A
// message's trace ID is a digest of the host and the queue id: stable
// across restarts without any state. Recipients refused during the SMTP
// session (smtp.mailbox-does-not-exist, smtp.relay-not-allowed,
// smtp.rcpt-to-greylisted) never get a queue id: they become a message of
// their own, with the sender of the session's MAIL FROM.
//
// docs/sources.md lists the events read and those that are not.
package stalwart

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Reasons a Stalwart line is not understood (source.Stats.NotUnderstood).
const (
	ReasonUnknownLine = "unknown stalwart line" // a line of Stalwart's program without an event id
	ReasonNoQueueID   = "stalwart event without a queue id"
)

// Programs are the syslog programs (journald identifiers, or the
// service.name of its OpenTelemetry exporter) Stalwart logs under.
var Programs = []string{"stalwart", "stalwart-mail", "stalwart-smtp"}

// Source correlates Stalwart's events (source.Source).
type Source struct {
	cfg source.Config
	env *source.Env
	// messages by host and queue id
	msgs map[string]*message
	// delivery attempts and SMTP sessions by host and span id (the
	// OpenTelemetry form names them), or for SMTP sessions in the text
	// form by host, remote address and port
	attempts map[string]string // host\x00spanId -> queue id
	sessions map[string]*session
}

// message is what the source knows of a queued message.
type message struct {
	host, qid, traceID string
	sender             string
	size               int64
	authenticated      bool
	clientIP           string
	rcpts              map[string]uint8 // address -> rcpt* flags
	domainErr          map[string]string
	domain             string // of the current attempt
	attempt            []string
	last               time.Time
	done               bool
}

const (
	rcptDelivered = 1 << iota
	rcptFailed
)

// session is an SMTP session: its client, its transaction.
type session struct {
	clientIP string
	sender   string
	since    time.Time
	spam     string // the classifier's verdict, for the message it queues
	refused  map[string]bool
	seen     time.Time
}

// New returns the Stalwart source.
func New(cfg source.Config, env *source.Env) source.Source {
	return &Source{cfg: cfg, env: env, msgs: map[string]*message{}, attempts: map[string]string{}, sessions: map[string]*session{}}
}

// Prepare claims the lines of Stalwart's programs and ignores the events
// that carry nothing for a trace (TLS, IMAP, HTTP, evaluation, raw I/O:
// most of them), from the event id alone.
func (c *Source) Prepare(program, msg string) (source.Verdict, bool) {
	if !isProgram(program) {
		return source.Verdict{}, false
	}
	id, _, ok := EventID(msg)
	if !ok {
		return source.Verdict{Daemon: "stalwart"}, true // counted as not understood
	}
	k := kindOf(id)
	return source.Verdict{Daemon: family(id), Ignore: k == kindIgnored, Flags: uint8(k)}, true
}

func isProgram(p string) bool {
	for _, q := range Programs {
		if p == q {
			return true
		}
	}
	return false
}

// TraceID returns the trace ID of a queue id on a host, while known.
func (c *Source) TraceID(host, qid string) string {
	if m := c.msgs[host+"\x00"+qid]; m != nil {
		return m.traceID
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

func traceIDFor(host, qid string) string { return digest(host, "stalwart", qid) }

// Consume reads one line Prepare claimed.
func (c *Source) Consume(l *source.Line) {
	e, ok := Parse(l.Message)
	if !ok {
		c.env.Stats.Skip(ReasonUnknownLine)
		return
	}
	if c.apply(l, kind(l.Flags), &e) {
		c.env.Stats.Used++
	}
}

// sessionKey names the SMTP session of an event: its span id (the
// OpenTelemetry form), else its client's address and port (the text
// form repeats the session's keys on every event).
func sessionKey(host string, e *Event) string {
	if id := e.Str("spanId"); id != "" {
		return host + "\x00span\x00" + id
	}
	ip, port := e.Str("remoteIp"), e.Str("remotePort")
	if ip == "" {
		return ""
	}
	return host + "\x00" + ip + "\x00" + port
}

// queueID is the queue id of an event: its own, or its delivery
// attempt's (the OpenTelemetry form names the attempt by its span id).
func (c *Source) queueID(host string, e *Event) string {
	if q := e.Str("queueId"); q != "" {
		return q
	}
	if id := e.Str("spanId"); id != "" {
		return c.attempts[host+"\x00"+id]
	}
	return ""
}

func (c *Source) message(host, qid string, t time.Time) *message {
	k := host + "\x00" + qid
	m := c.msgs[k]
	if m == nil {
		m = &message{host: host, qid: qid, traceID: traceIDFor(host, qid), rcpts: map[string]uint8{}, domainErr: map[string]string{}}
		c.msgs[k] = m
	}
	m.last = t
	return m
}

// apply handles one event; false when it was of no use.
func (c *Source) apply(l *source.Line, k kind, e *Event) bool {
	host, t := l.Host, l.UTC
	switch k {
	case kindSessionStart:
		if key := sessionKey(host, e); key != "" {
			c.sessions[key] = &session{clientIP: e.Str("remoteIp"), seen: t}
		}
		c.env.Stats.Ignored++
		return false
	case kindSessionEnd:
		delete(c.sessions, sessionKey(host, e))
		c.env.Stats.Ignored++
		return false
	case kindMailFrom, kindSpamClassify, kindRcptRefused:
		return c.applySession(l, k, e)
	}
	qid := c.queueID(host, e)
	if k == kindQueued {
		return c.queued(l, e, qid)
	}
	if qid == "" {
		c.env.Stats.Skip(ReasonNoQueueID)
		return false
	}
	m := c.message(host, qid, t)
	if span, ok := e.First("to"); ok && span.List != nil {
		// the attempt's recipients (the span's keys, on every event of it)
		m.attempt = addresses(span.List)
	}
	if kv, ok := e.First("from"); ok && m.sender == "" {
		m.sender = sender(kv)
	}
	switch k {
	case kindAttemptStart:
		if id := e.Str("spanId"); id != "" {
			c.attempts[host+"\x00"+id] = qid
		}
		if s, err := strconv.ParseInt(e.Str("size"), 10, 64); err == nil && m.size == 0 {
			m.size = s
		}
		m.domain = ""
		return true
	case kindAttemptEnd:
		if id := e.Str("spanId"); id != "" {
			delete(c.attempts, host+"\x00"+id)
		}
		c.env.Stats.Ignored++
		return false
	case kindDomainStart:
		m.domain = strings.ToLower(e.Str("domain"))
		return true
	case kindDomainError:
		d := m.domain
		if dom := e.Str("domain"); dom != "" {
			d = strings.ToLower(dom)
		}
		m.domainErr[d] = errorText(e)
		return true
	case kindDelivered, kindRcptRejected:
		rcpt := address(e.Str("to"))
		code, text := e.Str("code"), e.Str("details")
		typ := replyType(code)
		if k == kindDelivered {
			typ = mailflow.EventDeliver
		}
		c.outcome(m, l, typ, rcpt, e, reply(code, text), e.Str("hostname"), dsnCode(text))
		return true
	case kindDSN:
		rcpt := address(e.Str("to"))
		typ := dsnType(e.ID)
		f := m.rcpts[strings.ToLower(rcpt)]
		if (typ == mailflow.EventDeliver && f&rcptDelivered != 0) || (typ == mailflow.EventFail && f&rcptFailed != 0) {
			return true // its delivered or rejected line said it already
		}
		text := e.Str("details")
		c.outcome(m, l, typ, rcpt, e, reply(e.Str("code"), text), e.Str("hostname"), dsnCode(text))
		return true
	case kindRescheduled:
		for _, r := range m.attempt {
			if m.rcpts[strings.ToLower(r)] != 0 {
				continue
			}
			detail := "rescheduled: next retry at " + e.Str("nextRetry")
			if why := m.domainErr[domainOf(r)]; why != "" {
				detail += " (" + why + ")"
			}
			ev := c.event(m, l, mailflow.EventDefer, r)
			ev.Detail = detail
			c.env.Emit(ev)
		}
		return true
	case kindCompleted:
		m.done = true
		return true
	case kindIngested:
		return c.ingested(m, l, e)
	}
	c.env.Stats.Ignored++
	return false
}

// errorText is what an attempt's failure says, for a deferral's detail.
func errorText(e *Event) string {
	parts := []string{e.Desc}
	for _, k := range []string{"hostname", "code", "details", "reason", "causedBy"} {
		if v := e.Str(k); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, ": ")
}

// outcome emits what happened to a recipient.
func (c *Source) outcome(m *message, l *source.Line, typ mailflow.EventType, rcpt string, e *Event, resp, relay, dsn string) {
	if rcpt == "" {
		return
	}
	switch typ {
	case mailflow.EventDeliver:
		m.rcpts[strings.ToLower(rcpt)] |= rcptDelivered
	case mailflow.EventFail:
		m.rcpts[strings.ToLower(rcpt)] |= rcptFailed
	}
	ev := c.event(m, l, typ, rcpt)
	ev.Detail = e.Desc
	ev.SMTPResponse, ev.Relay, ev.DSN = resp, relay, dsn
	c.env.Emit(ev)
}

// ingested is a local delivery into a mailbox: ham, or spam (filed in
// the Junk folder). The event names the account, not the address: it is
// the recipient's when the attempt had one recipient, else the message's.
func (c *Source) ingested(m *message, l *source.Line, e *Event) bool {
	rcpt := ""
	if len(m.attempt) == 1 {
		rcpt = m.attempt[0]
	}
	ev := c.event(m, l, mailflow.EventDeliver, rcpt)
	ev.Detail = "delivered to the mailbox of account " + e.Str("accountId")
	if e.ID == "message-ingest.spam" {
		ev.Detail = "delivered to the Junk folder of account " + e.Str("accountId") + " (spam)"
	}
	ev.MessageID = strings.Trim(e.Str("messageId"), "<>")
	ev.Relay = "local"
	if rcpt == "" {
		ev.Type = mailflow.EventSubmit // a message-level note: the dsn-success of each recipient decides
	} else {
		m.rcpts[strings.ToLower(rcpt)] |= rcptDelivered
	}
	c.env.Emit(ev)
	return true
}

// queued is a message entering the queue: its Receive, and a Submit per
// recipient (their rows, GettingStatus until an outcome). A DSN queued in
// a delivery attempt of another message is also that message's Notify.
func (c *Source) queued(l *source.Line, e *Event, qid string) bool {
	host, t := l.Host, l.UTC
	if qid == "" {
		c.env.Stats.Skip(ReasonNoQueueID)
		return false
	}
	if e.ID == "queue.queue-dsn" {
		orig := ""
		if e.Count("queueId") > 1 {
			kv, _ := e.First("queueId")
			orig = kv.Value
		} else if id := e.Str("spanId"); id != "" {
			orig = c.attempts[host+"\x00"+id]
		}
		if orig != "" && orig != qid {
			om := c.message(host, orig, t)
			ev := c.event(om, l, mailflow.EventNotify, "")
			ev.Detail = "delivery status notification queued as " + qid
			c.env.Emit(ev)
		}
	}
	m := c.message(host, qid, t)
	from, _ := e.Last("from")
	m.sender = sender(from)
	m.size, _ = strconv.ParseInt(e.Str("size"), 10, 64)
	m.authenticated = e.ID == "queue.queue-message-authenticated" || e.ID == "queue.queue-autogenerated" ||
		e.ID == "queue.queue-report" || e.ID == "queue.queue-dsn"
	spam := ""
	if s := c.sessions[sessionKey(host, e)]; s != nil {
		m.clientIP = s.clientIP
		spam = s.spam
		s.spam = ""
	}
	if ip := e.Str("remoteIp"); ip != "" {
		m.clientIP = ip
	}
	var rcpts []string
	if to, ok := e.Last("to"); ok {
		rcpts = addresses(to.List)
		if to.List == nil && to.Value != "" {
			rcpts = []string{address(to.Value)}
		}
	}
	m.attempt = rcpts
	ev := c.event(m, l, mailflow.EventReceive, "")
	ev.Detail = e.Desc
	if spam != "" {
		ev.Detail += "; spam classifier: " + spam
	}
	ev.FromIP, ev.ClientIP, ev.OriginalClientIP = m.clientIP, m.clientIP, m.clientIP
	c.env.Emit(ev)
	for _, r := range rcpts {
		ev := c.event(m, l, mailflow.EventSubmit, r)
		ev.Detail = "queued for delivery to " + r
		c.env.Emit(ev)
	}
	return true
}

// applySession reads the events of an SMTP session before a message is
// queued: its sender, and the recipients it refused.
func (c *Source) applySession(l *source.Line, k kind, e *Event) bool {
	key := sessionKey(l.Host, e)
	if key == "" {
		c.env.Stats.Ignored++
		return false
	}
	s := c.sessions[key]
	if s == nil {
		s = &session{clientIP: e.Str("remoteIp")}
		c.sessions[key] = s
	}
	s.seen = l.UTC
	switch k {
	case kindMailFrom:
		s.sender, s.since, s.refused = address(e.Str("from")), l.UTC, nil
		return true
	case kindSpamClassify:
		s.spam = e.Str("result")
		return true
	case kindRcptRefused:
		rcpt := address(e.Str("to"))
		if rcpt == "" {
			return false
		}
		// one message per transaction: its ID a digest of the session and
		// the time of its MAIL FROM
		since := s.since
		if since.IsZero() {
			since = l.UTC
		}
		m := &message{host: l.Host, qid: "", sender: s.sender, clientIP: s.clientIP,
			traceID: digest(l.Host, "stalwart-session", key, since.Format(time.RFC3339Nano))}
		if s.refused == nil {
			s.refused = map[string]bool{}
			rv := c.event(m, l, mailflow.EventReceive, "")
			rv.Detail = "SMTP session from " + s.clientIP + ": recipients refused, nothing queued"
			rv.FromIP, rv.ClientIP = s.clientIP, s.clientIP
			c.env.Emit(rv)
		}
		s.refused[rcpt] = true
		ev := c.event(m, l, refusalType(e.ID), rcpt)
		ev.Detail = e.Desc
		ev.SMTPResponse = refusalReply(e.ID)
		ev.DSN = dsnCode(ev.SMTPResponse[4:])
		ev.ClientIP = s.clientIP
		c.env.Emit(ev)
		return true
	}
	c.env.Stats.Ignored++ // rcpt-to: the queue line lists the recipients
	return false
}

// event makes an event of a message with what the source knows of it.
func (c *Source) event(m *message, l *source.Line, typ mailflow.EventType, rcpt string) mailflow.Event {
	rcpt = mailflow.NormalizeAddress(rcpt)
	var rcpts []string
	for r := range m.rcpts {
		rcpts = append(rcpts, r)
	}
	rcpts = append(rcpts, m.attempt...)
	if rcpt != "" {
		rcpts = append(rcpts, rcpt)
	}
	return mailflow.Event{
		ID:             digest(m.host, m.qid, strconv.FormatInt(l.UTC.UnixNano(), 10), l.Raw, string(typ), rcpt),
		Time:           l.UTC,
		MessageTraceID: m.traceID,
		Recipient:      rcpt,
		Type:           typ,
		Source:         l.Daemon,
		Sender:         m.sender,
		Size:           m.size,
		Direction:      direction(c.cfg.AcceptedDomains, m.sender, m.authenticated, rcpts),
		ServerHostname: m.host,
	}
}

// addresses are the addresses of a list value.
func addresses(list []string) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		if a = address(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Sweep forgets finished messages after ForgetAfter, idle ones after
// MaxIdle, and sessions silent for an hour.
func (c *Source) Sweep() {
	if len(c.msgs) == 0 && len(c.sessions) == 0 && len(c.attempts) == 0 {
		return // no Stalwart line read: most logs (every 10 s of log time)
	}
	now := c.env.Now
	for k, m := range c.msgs {
		if (m.done && now.Sub(m.last) > c.cfg.ForgetAfter) || now.Sub(m.last) > c.cfg.MaxIdle {
			delete(c.msgs, k)
		}
	}
	for k, s := range c.sessions {
		if now.Sub(s.seen) > time.Hour {
			delete(c.sessions, k)
		}
	}
	if len(c.attempts) > 1<<16 {
		c.attempts = map[string]string{}
	}
}

// Flush has nothing to release: nothing is held.
func (c *Source) Flush() {}

// savedMessage is what State keeps of a message in flight.
type savedMessage struct {
	Host, QID, Sender string
	Size              int64
	Auth              bool
	ClientIP          string
	Rcpts             map[string]uint8
	Attempt           []string
	Last              time.Time
	Done              bool
}

// State keeps the messages in flight (their sender, recipients and
// outcomes so far); sessions and attempts are short and not kept.
func (c *Source) State() (json.RawMessage, error) {
	out := make([]savedMessage, 0, len(c.msgs))
	for _, m := range c.msgs {
		out = append(out, savedMessage{m.host, m.qid, m.sender, m.size, m.authenticated, m.clientIP, m.rcpts, m.attempt, m.last, m.done})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host+out[i].QID < out[j].Host+out[j].QID })
	return json.Marshal(out)
}

// Restore loads what State saved.
func (c *Source) Restore(b json.RawMessage) error {
	if len(b) == 0 {
		return nil
	}
	var in []savedMessage
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	for _, s := range in {
		m := &message{host: s.Host, qid: s.QID, traceID: traceIDFor(s.Host, s.QID), sender: s.Sender, size: s.Size, authenticated: s.Auth,
			clientIP: s.ClientIP, rcpts: s.Rcpts, attempt: s.Attempt, last: s.Last, done: s.Done, domainErr: map[string]string{}}
		if m.rcpts == nil {
			m.rcpts = map[string]uint8{}
		}
		c.msgs[s.Host+"\x00"+s.QID] = m
	}
	return nil
}
