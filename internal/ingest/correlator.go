// Package ingest turns mail server logs into trace store events.
//
// The Correlator reads Postfix syslog lines (and the lines of the content
// filters that sit beside Postfix: amavis, Proxmox Mail Gateway's
// pmg-smtp-filter, and rspamd through its milter) and joins them into
// messages: by host and queue id inside Postfix, and across a content filter
// by the new queue id the filter hands back ("queued as NEWID", PMG's
// "accept mail to <x> (NEWID)", amavis' "queued_as: NEWID"), so that one
// message keeps one MessageTraceID from the first hop to the last.
//
// # Trace IDs and restarts
//
// A message's MessageTraceID is a digest of (host, queue id, start time) of
// its first hop, where the start time is the time of its smtpd `client=` or
// pickup line (or of the first line seen for it). Long queue ids
// (enable_long_queue_ids, "4PbC4x469Jz3tBr") already encode their creation
// time and are never reused, so for them the start time is left out of the
// digest: the ID depends on nothing but the host and the queue id, and a
// correlator restarted mid-lifecycle with no state at all still gives the
// later lines of that message the same trace ID. Short queue ids
// ("21BCE3807B6") are reused, so their trace ID needs the start time, which
// only the correlator's state knows: a restart without State/Restore gives
// the rest of such a lifecycle a new trace ID (the store then shows the
// message twice, the second part starting at the restart). State and Restore
// carry that state (and messages held for a link) across a restart; Event IDs
// are digests of (host, queue id, line) and stay stable either way, so a
// replay after a restart stores nothing twice.
//
// # Holding
//
// A message received from a loopback client without authentication (a
// content filter re-injecting it), or first seen by a line other than
// `client=`/pickup (a bounce notice, or a message that started before the
// file), may turn out to be the second hop of another message. Its events
// are held until the link appears or Config.LinkWait (log time) passes, then
// emitted under the right trace ID. Everything else is emitted as soon as
// its line is read. Flush releases everything held (end of a file).
package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailtrace/mailtrace/internal/ingest/fastscan"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/store"
)

// Config configures a Correlator.
type Config struct {
	// AcceptedDomains are the organisation's domains, lower-case;
	// "*.example.com" matches every subdomain of example.com (not
	// example.com itself). They decide a message's Direction.
	AcceptedDomains []string
	// ContentFilters are the relays (as "ip:port") that are content
	// filters: a status=sent to one of them is a hand-over, not a delivery.
	// Empty means DefaultContentFilters. Any loopback relay whose reply
	// says "queued as NEWID" is a filter too.
	ContentFilters []string
	// LinkWait is how long (in log time) a message that may be the second
	// hop of another waits for its link before it becomes a message of its
	// own. Default 5 minutes.
	LinkWait time.Duration
	// ForgetAfter is how long (log time) a message is remembered after its
	// `removed` line, for late lines. Default 10 minutes.
	ForgetAfter time.Duration
	// MaxIdle forgets a message that has had no line for this long (log
	// time), e.g. one whose end was never logged. Default 7 days.
	MaxIdle time.Duration
	// Reference places RFC 3164 timestamps (which carry no year) in time;
	// zero means now. Later lines follow the earlier ones (see syslog.Parser).
	Reference time.Time
	// Location of RFC 3164 timestamps; nil means UTC.
	Location *time.Location
	// MaxLineBytes: longer lines are counted as "too long" and skipped.
	// Default 16 KiB.
	MaxLineBytes int
}

// DefaultContentFilters are the usual content filter ports on loopback:
// amavis (10024), PMG (10023 incoming, 10024 outgoing), amavis' second
// instance (10026).
var DefaultContentFilters = []string{
	"127.0.0.1:10024", "127.0.0.1:10023", "127.0.0.1:10026",
	"::1:10024", "::1:10023", "::1:10026",
}

func (c *Config) defaults() {
	if len(c.ContentFilters) == 0 {
		c.ContentFilters = DefaultContentFilters
	}
	if c.LinkWait <= 0 {
		c.LinkWait = 5 * time.Minute
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = 10 * time.Minute
	}
	if c.MaxIdle <= 0 {
		c.MaxIdle = 7 * 24 * time.Hour
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = 16 << 10
	}
}

// Reasons a line is not understood, the keys of Stats.NotUnderstood.
const (
	ReasonEmpty         = "empty"
	ReasonNotSyslog     = "not syslog"
	ReasonNotPostfix    = "not postfix"
	ReasonUnknownLine   = "unknown postfix line"
	ReasonTooLong       = "too long"
	ReasonUnknownQueue  = "line for an unknown message" // e.g. a filter verdict never claimed
	ReasonUnusableEvent = "unusable event"
)

// Stats counts what a Correlator read.
type Stats struct {
	Lines    int64 // lines read
	Used     int64 // lines that produced or changed something
	Ignored  int64 // understood, nothing to trace (connect, TLS, statistics...)
	Events   int64 // events emitted
	Messages int64 // messages (trace IDs) that emitted an event
	// Abandoned counts smtpd transactions that got a queue id but ended
	// without DATA (sender address verification probes, clients that quit
	// after RCPT): they are not messages and emit nothing.
	Abandoned int64
	// InvalidUTF8 counts lines that were not valid UTF-8: they are read
	// with the bad bytes replaced by U+FFFD.
	InvalidUTF8 int64
	// NotUnderstood counts skipped lines by reason.
	NotUnderstood map[string]int64

	skipped    int64  // sum of NotUnderstood
	lastReason string // reason of the latest skipped line
}

func (s *Stats) skip(reason string) {
	if s.NotUnderstood == nil {
		s.NotUnderstood = map[string]int64{}
	}
	s.NotUnderstood[reason]++
	s.skipped++
	s.lastReason = reason
}

// trace is one message as the store sees it: one or more hops.
type trace struct {
	id       string
	host     string
	received time.Time

	sender       string
	senderKnown  bool
	messageID    string
	subject      string
	size         int64
	origClientIP string
	fromIP       string
	clientName   string
	local        bool // generated or submitted locally (pickup, bounce notice)
	sasl         string

	rcpts        map[string]bool
	expandedFrom map[string]string
	verdict      map[string]bool // a filter verdict decided this recipient
	direction    store.Direction
	counted      bool // counted in Stats.Messages
}

// message is one queue id lifecycle (one hop).
type message struct {
	host, qid   string
	first, last time.Time
	start       time.Time // time of client=/pickup, else first
	started     bool      // client=/pickup seen
	tr          *trace
	held        []store.Event
	linked      bool       // a parent is known; wait for it
	pendingRoot bool       // received from outside; emitted once DATA shows it is a message
	waiting     []*message // children linked while this one was held
	noticeOf    string     // for a bounce notice: the original's queue id
	removed     bool
	removedAt   time.Time
	submitted   bool
	rcpt        map[string]store.Status
	verdict     map[string]bool   // a filter verdict decided this recipient
	expanded    map[string]string // recipient -> the address it was expanded from

	clientName, clientIP string
	origIP, sasl         string
	loopback             bool
	// own attributes, merged into the trace on release
	sender      string
	senderKnown bool
	messageID   string
	size        int64
	subject     string
}

// filterRec is a PMG filter run (keyed by its filter id) or an amavis run
// (keyed by its id), waiting to be claimed by the hop that handed it the
// message.
type filterRec struct {
	host, id   string
	first      time.Time
	messageID  string
	verdicts   []store.Event
	children   []*message
	rcptSeen   map[string]bool
	emittedFor *trace
}

type session struct {
	clientName, clientIP string
	qid                  string // the queue id of the session's current transaction
	seen                 time.Time
}

// Correlator joins log lines into messages and emits their events. It is
// not safe for concurrent use.
type Correlator struct {
	cfg     Config
	emit    func([]store.Event) error
	parser  syslog.Parser
	msgs    map[string]*message
	filters map[string]*filterRec
	// pendingLinks: a child queue id announced before any of its lines.
	pendingLinks map[string]*message
	sessions     map[string]session
	now          time.Time
	lastSweep    time.Time
	sweepAt      time.Time // lastSweep + 10s: now.Sub(lastSweep) >= 10s is !now.Before(sweepAt), now never being before lastSweep
	stats        Stats
	out          []store.Event
	traceIDs     map[string]string // host\x00qid -> trace id (bounded by msgs' lifetime)
	// emitCopies: emit copies the events and keeps nothing of the slice
	// (IngestReader's), so the slice is reused for the next line's
	emitCopies bool
}

// NewCorrelator returns a correlator that passes the events of each line to
// emit (never an empty slice). An error from emit is returned by Feed.
func NewCorrelator(cfg Config, emit func([]store.Event) error) *Correlator {
	cfg.defaults()
	for i, d := range cfg.AcceptedDomains {
		cfg.AcceptedDomains[i] = strings.ToLower(strings.TrimSpace(d))
	}
	c := &Correlator{
		cfg:          cfg,
		emit:         emit,
		parser:       syslog.Parser{Reference: cfg.Reference, Location: cfg.Location},
		msgs:         map[string]*message{},
		filters:      map[string]*filterRec{},
		pendingLinks: map[string]*message{},
		sessions:     map[string]session{},
		traceIDs:     map[string]string{},
	}
	c.setLastSweep(time.Time{})
	return c
}

// Stats returns what the correlator has read so far.
func (c *Correlator) Stats() Stats {
	s := c.stats
	s.NotUnderstood = map[string]int64{}
	for k, v := range c.stats.NotUnderstood {
		s.NotUnderstood[k] = v
	}
	return s
}

// Skipped returns how many lines were not understood so far and the reason
// of the latest one: a live reader compares it around Feed to count and log
// a bad line without copying Stats for every line.
func (c *Correlator) Skipped() (int64, string) { return c.stats.skipped, c.stats.lastReason }

// Now is the correlator's clock: the latest log time it has seen or been
// advanced to.
func (c *Correlator) Now() time.Time { return c.now }

// TraceID returns the trace ID of the latest lifecycle of a queue id on a
// host, while the correlator still remembers it ("" otherwise, or while the
// message is held).
func (c *Correlator) TraceID(host, queueID string) string {
	if m := c.msgs[host+"\x00"+queueID]; m != nil && m.tr != nil {
		return m.tr.id
	}
	return c.traceIDs[host+"\x00"+queueID]
}

// Feed reads one line (without its newline).
func (c *Correlator) Feed(line string) error { return c.feed(line, false) }

// feed is Feed. When view is set the bytes of line belong to the caller
// and are reused after the call (a read buffer): the line is then copied
// only when something of it is kept, which is not the case for the great
// majority of a server's lines (connect, disconnect, postscreen, TLS,
// statistics).
func (c *Correlator) feed(line string, view bool) error {
	var p prepared
	c.prepareLine(&p, &c.parser, line, view, false)
	return c.consume(&p)
}

// FeedFields reads one message whose header a sender already split (an
// RFC 5424 frame, a JSON record): the same as Feed of f.Text(), without
// joining the fields into a line to split it again. The file form is made
// only for a line that may matter, as its identity (event IDs digest it):
// a message gets the same event IDs however it is read.
func (c *Correlator) FeedFields(f *syslog.Fields) error {
	var p prepared
	c.prepareFields(&p, &c.parser, f)
	return c.consume(&p)
}

// A line is read in two halves: prepare (checks, syslog header, daemon,
// whether the line can matter: no correlator state but the syslog parser's)
// and consume (counters, clock, correlation). IngestReader may run the
// first half of the next lines on another core while the second half runs.
type prepOp uint8

const (
	prepNone       prepOp = iota // nothing was read
	prepTooLong                  // counted as too long
	prepEmpty                    // counted as empty
	prepNotSyslog                // counted as not syslog
	prepNotPostfix               // counted as not postfix
	prepIgnored                  // KindIgnored, known without ParseMessage
	prepLine                     // to ParseMessage and apply
)

// prepared is a line after the first half.
type prepared struct {
	op         prepOp
	invalid    bool // was not valid UTF-8 (repaired)
	disconnect bool // smtpd "disconnect from"
	data       bool // ... of a session that sent DATA or BDAT
	t          time.Time
	daemon     string
	line       syslog.Line // prepLine: all of it; prepIgnored: Host and PID
	raw        string      // prepLine
	host       *string     // detach: the latest host seen, reused while it stays the same
}

// prepareLine is the first half of feed. view: line's bytes are reused
// after the call; detach: p must stay valid after that (copies what it
// keeps), else p may share line's bytes until consume.
func (c *Correlator) prepareLine(p *prepared, parser *syslog.Parser, line string, view, detach bool) {
	if len(line) > c.cfg.MaxLineBytes {
		p.op = prepTooLong
		return
	}
	for n := len(line); n > 0 && (line[n-1] == '\n' || line[n-1] == '\r'); n-- {
		line = line[:n-1]
	}
	// a line starting with a printable ASCII byte is not blank; only the
	// others need the full (Unicode) test
	if len(line) == 0 || !(line[0] > ' ' && line[0] < utf8.RuneSelf) {
		if strings.TrimSpace(line) == "" {
			p.op = prepEmpty
			return
		}
	}
	if !fastscan.IsASCII(line) && !utf8.ValidString(line) {
		// Repair rather than drop: a Latin-1 subject must not cost the
		// delivery line it is on.
		p.invalid = true
		line = strings.ToValidUTF8(line, "\uFFFD")
		view = false
	}
	if err := parser.ParseInto(&p.line, line); err != nil {
		p.op = prepNotSyslog
		return
	}
	c.prepareParsed(p, &p.line, line, view, detach)
}

// prepareFields is the first half of FeedFields: prepareLine's checks, on
// the fields (f is not changed).
func (c *Correlator) prepareFields(p *prepared, parser *syslog.Parser, f *syslog.Fields) {
	if f.Len() > c.cfg.MaxLineBytes {
		p.op = prepTooLong
		return
	}
	if n := len(f.Message); n > 0 && (f.Message[n-1] == '\n' || f.Message[n-1] == '\r') {
		g := *f
		for n > 0 && (g.Message[n-1] == '\n' || g.Message[n-1] == '\r') {
			n--
		}
		g.Message = g.Message[:n]
		f = &g
	}
	if !f.ValidUTF8() {
		p.invalid = true
		g := f.ToValidUTF8()
		f = &g
	}
	if err := parser.ParseFields(&p.line, f); err != nil {
		p.op = prepNotSyslog
		return
	}
	c.prepareParsed(p, &p.line, "", false, false)
	if p.op == prepLine {
		p.raw = f.Text()
	}
}

// prepareParsed is the second part of prepareLine and prepareFields (l may
// be &p.line).
func (c *Correlator) prepareParsed(p *prepared, l *syslog.Line, raw string, view, detach bool) {
	daemon, ok := daemonOf(l.Program)
	if !ok {
		p.op = prepNotPostfix
		return
	}
	p.t = l.Time.UTC()
	if daemon == "smtpd" && strings.HasPrefix(l.Message, "disconnect from ") {
		p.disconnect = true
		p.data = sentData(l.Message)
	}
	if ignorable(daemon, l.Message) {
		// What ParseMessage and apply would make of it, without building
		// a Record: KindIgnored, nothing kept but a disconnect's host.
		p.op = prepIgnored
		p.line.Host, p.line.PID = l.Host, l.PID
		if view && detach && p.disconnect && p.host != nil {
			if *p.host != l.Host {
				*p.host = strings.Clone(l.Host)
			}
			p.line.Host = *p.host
		}
		return
	}
	p.op = prepLine
	if view {
		// this line may be kept: give it bytes of its own
		owned := strings.Clone(raw)
		p.line.Time, p.line.PID, p.line.HasYear = l.Time, l.PID, l.HasYear
		p.line.Host, p.line.Program, p.line.Message = rebase(l.Host, raw, owned), rebase(l.Program, raw, owned), rebase(l.Message, raw, owned)
		raw = owned
		daemon, _ = daemonOf(p.line.Program)
	} else if l != &p.line {
		p.line = *l
	}
	p.daemon, p.raw = daemon, raw
}

// sentData is strings.Contains(msg, " data=") || strings.Contains(msg,
// " bdat="), in one pass over the '=' of the message.
func sentData(msg string) bool {
	for i := 0; ; {
		j := strings.IndexByte(msg[i:], '=')
		if j < 0 {
			return false
		}
		i += j
		if i >= 5 && (msg[i-5:i] == " data" || msg[i-5:i] == " bdat") {
			return true
		}
		i++
	}
}

// consume is the second half of feed.
func (c *Correlator) consume(p *prepared) error {
	if done, err := c.consumeHead(p.op, p.invalid, p.t, p.disconnect); done {
		return err
	}
	l := &p.line
	if p.op == prepIgnored {
		c.disconnect(l.Host, l.PID, p.data)
		c.stats.Ignored++
		return c.drain()
	}
	rec := ParseMessage(p.daemon, l.Message)
	if p.disconnect {
		c.disconnect(l.Host, l.PID, p.data)
	}
	used := c.apply(l.Host, p.t, p.raw, rec, l.PID)
	switch {
	case rec.Kind == KindIgnored:
		c.stats.Ignored++
	case rec.Kind == KindUnknown:
		c.stats.skip(ReasonUnknownLine)
	case !used:
		c.stats.skip(ReasonUnknownQueue)
	default:
		c.stats.Used++
	}
	return c.drain()
}

// consumeHead is the part of consume that needs nothing of a line but
// its op, whether it was repaired, its time and whether it ends a session:
// all of it for most lines (done), which the pipeline hands over in a few
// bytes instead of a whole prepared.
func (c *Correlator) consumeHead(op prepOp, invalid bool, t time.Time, disconnect bool) (done bool, err error) {
	if op == prepNone {
		return true, nil
	}
	c.stats.Lines++
	if invalid {
		c.stats.InvalidUTF8++
	}
	switch op {
	case prepTooLong:
		c.stats.skip(ReasonTooLong)
		return true, nil
	case prepEmpty:
		c.stats.skip(ReasonEmpty)
		return true, nil
	case prepNotSyslog:
		c.stats.skip(ReasonNotSyslog)
		return true, nil
	case prepNotPostfix:
		c.stats.skip(ReasonNotPostfix)
		return true, nil
	}
	if t.After(c.now) {
		c.now = t
	}
	if !c.now.Before(c.sweepAt) {
		c.sweep()
		c.setLastSweep(c.now)
	}
	if op == prepIgnored && !disconnect {
		c.stats.Ignored++
		return true, c.drain()
	}
	return false, nil
}

// rebase returns the substring of to at the place sub has in from (sub is a
// substring of from, to a copy of from).
func rebase(sub, from, to string) string {
	if len(sub) == 0 {
		return ""
	}
	off, ok := fastscan.Offset(sub, from)
	if !ok || len(to) != len(from) {
		return strings.Clone(sub)
	}
	return to[off : off+len(sub)]
}

// disconnect ends an smtpd session: a transaction still waiting for DATA
// was abandoned (or was a verification probe) unless the session did send
// DATA or BDAT (then it is a message whose other lines are late).
func (c *Correlator) disconnect(host string, pid int, data bool) {
	// the key host\x00pid built on the stack: most disconnects end a
	// session that had no transaction and left no entry
	var buf [128]byte
	k := strconv.AppendInt(append(append(buf[:0], host...), 0), int64(pid), 10)
	s, ok := c.sessions[string(k)]
	if !ok {
		return
	}
	delete(c.sessions, string(k))
	if s.qid == "" {
		return
	}
	mk := host + "\x00" + s.qid
	m := c.msgs[mk]
	if m == nil || !m.pendingRoot || m.tr != nil {
		return
	}
	if data {
		c.releaseRoot(m)
		return
	}
	delete(c.msgs, mk)
	c.stats.Abandoned++
}

func (c *Correlator) drain() error {
	if len(c.out) == 0 {
		return nil
	}
	evs := c.out
	c.out = nil
	c.stats.Events += int64(len(evs))
	err := c.emit(evs)
	if c.emitCopies {
		c.out = evs[:0]
	}
	return err
}

// Advance moves the correlator's clock (log time) to now when no line has
// done so, releasing what waited too long for a link. A live reader calls it
// during quiet periods so that held messages do not wait for the next line.
func (c *Correlator) Advance(now time.Time) error {
	now = now.UTC()
	if now.After(c.now) {
		c.now = now
		c.sweep()
		c.setLastSweep(c.now)
	}
	return c.drain()
}

// Flush releases every held message and unclaimed filter run as a message
// of its own (call it at the end of a file, or before a shutdown without
// State). Remembered lifecycles are kept.
func (c *Correlator) Flush() error {
	for _, f := range c.sortedFilters(func(*filterRec) bool { return true }) {
		c.expireFilter(f)
	}
	for _, m := range c.sortedMsgs(func(m *message) bool { return m.tr == nil }) {
		c.releaseRoot(m)
	}
	return c.drain()
}

func (c *Correlator) setLastSweep(t time.Time) {
	c.lastSweep, c.sweepAt = t, t.Add(10*time.Second)
}

// sortedFilters and sortedMsgs select in a stable order (first seen, then
// key) so that what a sweep or a flush emits does not depend on map order.
func (c *Correlator) sortedFilters(keep func(*filterRec) bool) []*filterRec {
	var out []*filterRec
	for _, f := range c.filters {
		if keep(f) {
			out = append(out, f)
		}
	}
	if len(out) < 2 {
		return out
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].first.Equal(out[j].first) {
			return out[i].first.Before(out[j].first)
		}
		return out[i].id < out[j].id
	})
	return out
}

func (c *Correlator) sortedMsgs(keep func(*message) bool) []*message {
	var out []*message
	for _, m := range c.msgs {
		if keep(m) {
			out = append(out, m)
		}
	}
	if len(out) < 2 {
		return out
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].first.Equal(out[j].first) {
			return out[i].first.Before(out[j].first)
		}
		return out[i].host+out[i].qid < out[j].host+out[j].qid
	})
	return out
}

// sweep releases messages that waited too long for a link and forgets
// finished ones.
func (c *Correlator) sweep() {
	for _, f := range c.sortedFilters(func(f *filterRec) bool { return c.now.Sub(f.first) > c.cfg.LinkWait }) {
		c.expireFilter(f)
	}
	for _, m := range c.sortedMsgs(func(m *message) bool {
		return m.tr == nil && (c.now.Sub(m.first) > c.cfg.LinkWait || c.now.Sub(m.last) > c.cfg.MaxIdle)
	}) {
		c.releaseRoot(m)
	}
	for k, m := range c.msgs {
		if (m.removed && c.now.Sub(m.removedAt) > c.cfg.ForgetAfter) || c.now.Sub(m.last) > c.cfg.MaxIdle {
			delete(c.msgs, k)
		}
	}
	for k, s := range c.sessions {
		if c.now.Sub(s.seen) > time.Hour {
			delete(c.sessions, k)
		}
	}
	for k, m := range c.pendingLinks {
		if c.now.Sub(m.last) > c.cfg.LinkWait {
			delete(c.pendingLinks, k)
		}
	}
	if len(c.traceIDs) > 1<<16 {
		c.traceIDs = map[string]string{}
	}
}

// ---- trace IDs and event IDs

func digest(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	var stack [512]byte
	buf := stack[:0]
	if n > len(stack) {
		buf = make([]byte, 0, n)
	}
	for _, p := range parts {
		buf = append(buf, p...)
		buf = append(buf, 0)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:10])
}

func traceIDFor(host, qid string, start time.Time) string {
	if isLongQueueID(qid) {
		return digest(host, qid)
	}
	return digest(host, qid, start.UTC().Format(time.RFC3339Nano))
}

func eventID(host, qid string, t time.Time, raw string, typ store.EventType, rcpt string) string {
	// the bytes of fmt "%s\x00%s\x00%d\x00%s\x00%s\x00%s", built without fmt
	rcpt = store.NormalizeAddress(rcpt)
	var stack [1024]byte
	buf := stack[:0]
	if n := len(host) + len(qid) + 20 + len(raw) + len(typ) + len(rcpt) + 5; n > len(stack) {
		buf = make([]byte, 0, n)
	}
	buf = append(buf, host...)
	buf = append(buf, 0)
	buf = append(buf, qid...)
	buf = append(buf, 0)
	buf = strconv.AppendInt(buf, t.UnixNano(), 10)
	buf = append(buf, 0)
	buf = append(buf, raw...)
	buf = append(buf, 0)
	buf = append(buf, typ...)
	buf = append(buf, 0)
	buf = append(buf, rcpt...)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}

// ---- messages

func (c *Correlator) get(host, qid string, t time.Time) *message {
	k := host + "\x00" + qid
	m := c.msgs[k]
	if m == nil {
		m = &message{host: host, qid: qid, first: t, start: t, last: t, rcpt: map[string]store.Status{}, verdict: map[string]bool{}}
		c.msgs[k] = m
		if p := c.pendingLinks[k]; p != nil {
			delete(c.pendingLinks, k)
			c.link(m, p)
		}
	}
	if t.After(m.last) {
		m.last = t
	}
	if t.Before(m.first) {
		m.first = t
		if !m.started {
			m.start = t
		}
	}
	return m
}

// begin returns the message for a line that starts a lifecycle (client=,
// pickup, the first cleanup line): a queue id whose earlier lifecycle ended
// before t starts afresh.
func (c *Correlator) begin(host, qid string, t time.Time) *message {
	k := host + "\x00" + qid
	if m := c.msgs[k]; m != nil && m.removed && t.After(m.removedAt) {
		if m.tr == nil {
			c.releaseRoot(m)
		}
		delete(c.msgs, k)
	}
	return c.get(host, qid, t)
}

func newTrace(id, host string) *trace {
	return &trace{id: id, host: host, rcpts: map[string]bool{}, expandedFrom: map[string]string{}, verdict: map[string]bool{}}
}

// releaseRoot makes a held message a message of its own.
func (c *Correlator) releaseRoot(m *message) {
	if m.tr != nil {
		return
	}
	c.release(m, newTrace(traceIDFor(m.host, m.qid, m.start), m.host))
}

// release attaches m to tr and emits what it held.
func (c *Correlator) release(m *message, tr *trace) {
	if m.tr != nil {
		return
	}
	m.tr = tr
	c.traceIDs[m.host+"\x00"+m.qid] = tr.id
	c.merge(m)
	held := m.held
	m.held = nil
	for _, e := range held {
		c.out = append(c.out, c.fill(tr, e))
	}
	for _, ch := range m.waiting {
		c.release(ch, tr)
	}
	m.waiting = nil
}

// merge copies a hop's attributes into its trace where the trace has none.
func (c *Correlator) merge(m *message) {
	tr := m.tr
	if tr.received.IsZero() || m.first.Before(tr.received) {
		tr.received = m.first
	}
	if !tr.senderKnown && m.senderKnown {
		tr.sender, tr.senderKnown = m.sender, true
	}
	if tr.messageID == "" {
		tr.messageID = m.messageID
	}
	if tr.size == 0 {
		tr.size = m.size
	}
	if tr.subject == "" {
		tr.subject = m.subject
	}
	if tr.sasl == "" {
		tr.sasl = m.sasl
	}
	for to, from := range m.expanded {
		if tr.expandedFrom[to] == "" {
			tr.expandedFrom[to] = from
		}
	}
	if tr.origClientIP == "" {
		switch {
		case m.origIP != "":
			tr.origClientIP = m.origIP
		case m.clientIP != "" && !m.loopback:
			tr.origClientIP = m.clientIP
		}
	}
	if tr.fromIP == "" && m.clientIP != "" && !m.loopback {
		tr.fromIP = m.clientIP
		tr.clientName = m.clientName
	}
}

// link makes child a later hop of parent.
func (c *Correlator) link(child, parent *message) {
	if child == parent || child.tr != nil {
		return
	}
	child.linked = true
	if parent.tr != nil {
		c.release(child, parent.tr)
		return
	}
	parent.waiting = append(parent.waiting, child)
}

// linkID links the queue id newID on host to parent, now or when it appears.
func (c *Correlator) linkID(host, newID string, parent *message) {
	k := host + "\x00" + newID
	if ch := c.msgs[k]; ch != nil && !(ch.removed && ch.removedAt.Before(parent.first)) {
		c.link(ch, parent)
		return
	}
	c.pendingLinks[k] = parent
}

// add emits (or holds) an event of message m.
func (c *Correlator) add(m *message, e store.Event) {
	if m.tr == nil {
		m.held = append(m.held, e)
		return
	}
	c.merge(m)
	c.out = append(c.out, c.fill(m.tr, e))
}

// fill sets the message-level attributes of an event from its trace.
func (c *Correlator) fill(tr *trace, e store.Event) store.Event {
	if !tr.counted {
		tr.counted = true
		c.stats.Messages++
	}
	e.MessageTraceID = tr.id
	e.Sender = tr.sender
	e.MessageID = tr.messageID
	e.Subject = tr.subject
	e.Size = tr.size
	e.OriginalClientIP = tr.origClientIP
	e.FromIP = tr.fromIP
	e.Received = tr.received
	if e.Recipient != "" {
		r := store.NormalizeAddress(e.Recipient)
		e.Recipient = r
		if e.Type != store.EventExpand {
			tr.rcpts[r] = true
		}
		if from := tr.expandedFrom[r]; from != "" && e.ExpandedFrom == "" {
			e.ExpandedFrom = from
		}
	}
	tr.direction = c.direction(tr)
	e.Direction = tr.direction
	if e.ServerHostname == "" {
		e.ServerHostname = tr.host
	}
	if e.Validate() != nil {
		// never hand the store an event it refuses: drop bad IPs
		e.ClientIP, e.ToIP, e.FromIP, e.OriginalClientIP, e.ServerIP = validIP(e.ClientIP), validIP(e.ToIP), validIP(e.FromIP), validIP(e.OriginalClientIP), validIP(e.ServerIP)
	}
	return e
}

// inside reports whether an address is in an accepted domain.
func (c *Correlator) inside(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return false
	}
	d := strings.ToLower(strings.TrimSuffix(a[at+1:], "."))
	for _, p := range c.cfg.AcceptedDomains {
		if sub, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(d, "."+sub) {
				return true
			}
		} else if d == p {
			return true
		}
	}
	return false
}

func (c *Correlator) direction(tr *trace) store.Direction {
	if len(tr.rcpts) == 0 || !tr.senderKnown {
		return ""
	}
	org := tr.sasl != "" || (tr.sender == "" && tr.local) || (tr.sender != "" && c.inside(tr.sender))
	anyIn, anyOut := false, false
	for r := range tr.rcpts {
		if c.inside(r) {
			anyIn = true
		} else {
			anyOut = true
		}
	}
	switch {
	case org && anyOut:
		return store.DirectionOutbound
	case org:
		return store.DirectionInternal
	case anyIn:
		return store.DirectionInbound
	default:
		return store.DirectionOutbound // relayed from outside to outside
	}
}

func (c *Correlator) isFilterRelay(r *Record) bool {
	if r.RelayIP == "" {
		return false
	}
	hp := r.RelayIP + ":" + strconv.Itoa(r.RelayPort)
	for _, f := range c.cfg.ContentFilters {
		if f == hp {
			return true
		}
	}
	return isLoopback(r.RelayIP) && r.NewID != ""
}

// ---- applying records

func (c *Correlator) newEvent(m *message, t time.Time, raw string, typ store.EventType, rcpt, source string) store.Event {
	return store.Event{
		ID:             eventID(m.host, m.qid, t, raw, typ, rcpt),
		Time:           t,
		Recipient:      store.NormalizeAddress(rcpt),
		Type:           typ,
		Source:         source,
		ServerHostname: m.host,
	}
}

// apply handles one record and reports whether it was used.
func (c *Correlator) apply(host string, t time.Time, raw string, r Record, pid int) bool {
	if r.QueueID != "" && r.Kind != KindClient && r.Kind != KindIgnored && r.Kind != KindUnknown {
		if m := c.msgs[host+"\x00"+r.QueueID]; m != nil && m.pendingRoot && m.tr == nil {
			c.releaseRoot(m)
		}
	}
	switch r.Kind {
	case KindIgnored, KindUnknown:
		return false
	case KindSession:
		c.sessions[host+"\x00"+strconv.Itoa(pid)] = session{clientName: r.ClientName, clientIP: r.ClientIP, seen: t}
		return true
	case KindClient:
		m := c.begin(host, r.QueueID, t)
		m.started = true
		m.start = t
		m.clientName, m.clientIP, m.sasl = r.ClientName, r.ClientIP, r.SASLUsername
		m.origIP = r.OrigClientIP
		m.loopback = (r.ClientIP != "" && isLoopback(r.ClientIP)) || (r.ClientIP == "" && r.ClientName == "localhost")
		e := c.newEvent(m, t, raw, store.EventReceive, "", r.Daemon)
		e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
		e.Detail = fmt.Sprintf("received from %s[%s] as queue id %s", r.ClientName, r.ClientIP, r.QueueID)
		if r.OrigClientIP != "" {
			e.Detail += fmt.Sprintf(", originally from %s[%s]", r.OrigClientName, r.OrigClientIP)
		}
		if r.SASLUsername != "" {
			e.Detail += ", authenticated as " + r.SASLUsername
		}
		c.add(m, e)
		if m.tr == nil && !m.linked && (!m.loopback || m.sasl != "") {
			// From outside: a message once DATA begins (its next line),
			// nothing if the session ends without it.
			m.pendingRoot = true
		}
		if pid > 0 {
			k := host + "\x00" + strconv.Itoa(pid)
			s := c.sessions[k]
			s.qid, s.seen = r.QueueID, t
			c.sessions[k] = s
		}
		return true
	case KindPickup:
		m := c.begin(host, r.QueueID, t)
		m.started = true
		m.start = t
		if r.HasFrom {
			m.sender, m.senderKnown = r.From, true
		}
		e := c.newEvent(m, t, raw, store.EventReceive, "", r.Daemon)
		e.Detail = fmt.Sprintf("submitted locally by uid %s as queue id %s", r.UID, r.QueueID)
		c.add(m, e)
		if m.tr == nil && !m.linked {
			c.releaseRoot(m)
		}
		if m.tr != nil {
			m.tr.local = true
		}
		return true
	case KindMessageID:
		m := c.begin(host, r.QueueID, t)
		m.messageID = r.MessageID
		if m.tr != nil && m.tr.messageID == "" {
			m.tr.messageID = r.MessageID
		}
		return true
	case KindQueued:
		m := c.get(host, r.QueueID, t)
		if r.HasFrom {
			m.sender, m.senderKnown = r.From, true
		}
		m.size = r.Size
		if m.tr != nil {
			if !m.tr.senderKnown && r.HasFrom {
				m.tr.sender, m.tr.senderKnown = r.From, true
			}
			if m.tr.size == 0 {
				m.tr.size = r.Size
			}
		}
		if !m.submitted {
			m.submitted = true
			e := c.newEvent(m, t, raw, store.EventSubmit, "", r.Daemon)
			e.Detail = fmt.Sprintf("queued: from=<%s>, size=%d, nrcpt=%d", r.From, r.Size, r.NRcpt)
			c.add(m, e)
		}
		return true
	case KindDelivery:
		c.delivery(host, t, raw, r)
		return true
	case KindExpired:
		m := c.get(host, r.QueueID, t)
		for rc, st := range m.rcpt {
			if st == store.StatusPending || st == "" {
				e := c.newEvent(m, t, raw, store.EventFail, rc, r.Daemon)
				e.Detail = "expired in the queue, returned to sender"
				m.rcpt[rc] = store.StatusFailed
				c.add(m, e)
			}
		}
		return true
	case KindRemoved:
		m := c.get(host, r.QueueID, t)
		m.removed = true
		m.removedAt = t
		return true
	case KindNotify:
		m := c.get(host, r.QueueID, t)
		n := c.get(host, r.NewID, t)
		n.noticeOf = r.QueueID
		n.linked = false
		ne := c.newEvent(n, t, raw, store.EventReceive, "", r.Daemon)
		ne.Detail = fmt.Sprintf("%s for queue id %s", r.NotifyKind, r.QueueID)
		if m.tr != nil {
			ne.Detail += " (message trace " + m.tr.id + ")"
		}
		c.add(n, ne)
		if n.tr == nil {
			c.releaseRoot(n)
		}
		n.tr.local = true
		e := c.newEvent(m, t, raw, store.EventNotify, "", r.Daemon)
		e.Detail = fmt.Sprintf("%s queued as %s (message trace %s)", r.NotifyKind, r.NewID, n.tr.id)
		c.add(m, e)
		return true
	case KindSubject:
		m := c.get(host, r.QueueID, t)
		m.subject = r.Subject
		if m.tr != nil && m.tr.subject == "" {
			m.tr.subject = r.Subject
		}
		return true
	case KindReject, KindAction:
		c.action(host, t, raw, r)
		return true
	case KindProxy:
		return c.proxy(host, t, raw, r, pid)
	case KindFilter:
		return c.pmgFilter(host, t, raw, r)
	case KindAmavis:
		return c.amavis(host, t, raw, r)
	}
	return false
}

func (c *Correlator) delivery(host string, t time.Time, raw string, r Record) {
	m := c.get(host, r.QueueID, t)
	rcpt := store.NormalizeAddress(r.To)
	if orig := store.NormalizeAddress(r.OrigTo); orig != "" && orig != rcpt {
		if m.expanded == nil {
			m.expanded = map[string]string{}
		}
		m.expanded[rcpt] = orig
		if m.tr != nil && m.tr.expandedFrom[rcpt] == "" {
			m.tr.expandedFrom[rcpt] = orig
		}
		ex := c.newEvent(m, t, raw, store.EventExpand, orig, r.Daemon)
		ex.Detail = fmt.Sprintf("%s was rewritten or expanded to %s", orig, rcpt)
		c.add(m, ex)
	}
	var typ store.EventType
	detail := fmt.Sprintf("status=%s via %s: %s", r.Status, r.Relay, r.Response)
	filter := c.isFilterRelay(&r)
	switch r.Status {
	case "sent":
		switch {
		case filter:
			typ = store.EventTransfer
			if f := c.filters[host+"\x00"+r.FilterID]; r.FilterID != "" && f != nil {
				c.claimFilter(f, m, t)
			}
			verdictKnown := m.verdict[rcpt] || (m.tr != nil && m.tr.verdict[rcpt])
			lower := strings.ToLower(r.Response)
			switch {
			case verdictKnown:
			case strings.Contains(r.Response, " BLOCKED"), strings.Contains(lower, "discarded"), strings.Contains(lower, "reject"):
				typ = store.EventFilterAsSpam
			}
			if r.NewID != "" {
				detail = fmt.Sprintf("handed to content filter %s, queued as %s: %s", r.Relay, r.NewID, r.Response)
				c.linkID(host, r.NewID, m)
			} else {
				detail = fmt.Sprintf("handed to content filter %s: %s", r.Relay, r.Response)
			}
		case r.Daemon == "discard":
			typ = store.EventFilterAsSpam
		default:
			typ = store.EventDeliver
		}
	case "deferred":
		typ = store.EventDefer
	case "bounced", "expired", "undeliverable":
		typ = store.EventFail
	default: // "deliverable" and other address verification probes
		typ = store.EventSend
	}
	e := c.newEvent(m, t, raw, typ, rcpt, r.Daemon)
	e.Detail = detail
	e.Relay = r.Relay
	e.ToIP = r.RelayIP
	e.DSN = r.DSN
	e.SMTPResponse = r.Response
	if r.OrigTo != "" && store.NormalizeAddress(r.OrigTo) != rcpt {
		e.ExpandedFrom = store.NormalizeAddress(r.OrigTo)
	}
	if s, ok := store.StatusOf(typ); ok {
		m.rcpt[rcpt] = s
	} else if _, seen := m.rcpt[rcpt]; !seen {
		m.rcpt[rcpt] = ""
	}
	c.add(m, e)
}

// rejectType decides what a reject means: a recipient address that does not
// work (unknown user, mailbox full or disabled) or an oversize message
// failed; everything else (relay denied, RBL, HELO and sender checks,
// greylisting, spam, milters) is a refusal by policy: FilterAsSpam.
func rejectType(dsn, reason string) store.EventType {
	if strings.Contains(strings.ToLower(reason), "greylist") {
		return store.EventFilterAsSpam
	}
	switch dsn {
	case "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "4.1.1", "4.1.2", "5.3.4", "4.2.2", "5.2.2", "5.2.1", "5.2.0":
		return store.EventFail // the recipient address does not work, or the message is too big
	}
	return store.EventFilterAsSpam
}

// action handles smtpd rejects (NOQUEUE or with a queue id) and cleanup /
// milter actions.
func (c *Correlator) action(host string, t time.Time, raw string, r Record) {
	var m *message
	if r.QueueID == "" {
		// A message refused before it got a queue id: traceable on its own.
		qid := "NOQUEUE-" + digest(raw)[:8]
		m = c.get(host, qid, t)
		m.started = true
		m.start = t
		m.clientName, m.clientIP = r.ClientName, r.ClientIP
		if r.HasFrom {
			m.sender, m.senderKnown = r.From, true
		}
		c.releaseRoot(m)
		m.removed, m.removedAt = true, t
		e := c.newEvent(m, t, raw, store.EventReceive, "", r.Daemon)
		e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
		e.Detail = fmt.Sprintf("%s %s from %s[%s] before queueing", r.Action, r.Stage, r.ClientName, r.ClientIP)
		c.add(m, e)
	} else {
		m = c.get(host, r.QueueID, t)
		if r.HasFrom && !m.senderKnown {
			m.sender, m.senderKnown = r.From, true
			if m.tr != nil && !m.tr.senderKnown {
				m.tr.sender, m.tr.senderKnown = r.From, true
			}
		}
	}
	var typ store.EventType
	switch r.Action {
	case "reject", "milter-reject":
		if r.Stage == "header" || r.Stage == "body" || strings.HasPrefix(r.Action, "milter") {
			typ = store.EventFilterAsSpam
		} else {
			typ = rejectType(r.DSN, r.Reason)
		}
	case "hold", "milter-hold":
		typ = store.EventQuarantine
	case "discard", "milter-discard":
		typ = store.EventFilterAsSpam
	default: // redirect, milter-header-redirect
		typ = store.EventRedirect
	}
	// The action concerns the whole message at cleanup and for DATA or
	// END-OF-MESSAGE, only the named recipient at RCPT.
	rcpts := []string{}
	if r.To != "" {
		rcpts = append(rcpts, store.NormalizeAddress(r.To))
	}
	if r.Stage != "RCPT" {
		for rc := range m.rcpt {
			if rc != store.NormalizeAddress(r.To) {
				rcpts = append(rcpts, rc)
			}
		}
	}
	if len(rcpts) == 0 {
		rcpts = append(rcpts, "")
	}
	for _, rc := range rcpts {
		e := c.newEvent(m, t, raw, typ, rc, r.Daemon)
		e.Detail = fmt.Sprintf("%s: %s", r.Action, r.Reason)
		e.DSN = r.DSN
		e.SMTPResponse = r.Reason
		e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
		if typ == store.EventRedirect {
			e.Detail = fmt.Sprintf("%s to %s", r.Action, r.Reason)
		}
		if s, ok := store.StatusOf(typ); ok && rc != "" {
			m.rcpt[rc] = s
		}
		c.add(m, e)
	}
}

// ---- content filters

func (c *Correlator) filter(host, id string, t time.Time) *filterRec {
	k := host + "\x00" + id
	f := c.filters[k]
	if f == nil {
		f = &filterRec{host: host, id: id, first: t, rcptSeen: map[string]bool{}}
		c.filters[k] = f
	}
	return f
}

// pmgFilter handles pmg-smtp-filter lines.
func (c *Correlator) pmgFilter(host string, t time.Time, raw string, r Record) bool {
	k := host + "\x00" + r.FilterID
	if r.Verdict == "new" {
		if old := c.filters[k]; old != nil {
			c.expireFilter(old)
		}
		delete(c.filters, k)
		f := c.filter(host, r.FilterID, t)
		f.messageID = r.MessageID
		return true
	}
	f := c.filter(host, r.FilterID, t)
	switch r.Verdict {
	case "accept":
		if r.NewID != "" {
			ch := c.get(host, r.NewID, t)
			ch.linked = true
			f.children = append(f.children, ch)
			if f.emittedFor != nil {
				c.release(ch, f.emittedFor)
			}
		}
		return true
	case "block", "quarantine":
		typ := store.EventFilterAsSpam
		if r.Verdict == "quarantine" {
			typ = store.EventQuarantine
		}
		rc := store.NormalizeAddress(r.To)
		e := store.Event{
			ID:        eventID(host, r.FilterID, t, raw, typ, rc),
			Time:      t,
			Recipient: rc,
			Type:      typ,
			Source:    r.Daemon,
			Detail:    fmt.Sprintf("%s mail to <%s> (%s)", r.Verdict, r.To, r.Reason),
		}
		if r.Verdict == "quarantine" {
			e.Detail = fmt.Sprintf("moved mail for <%s> %s", r.To, r.Reason)
		}
		f.verdicts = append(f.verdicts, e)
		f.rcptSeen[rc] = true
		if f.emittedFor != nil {
			f.emittedFor.verdict[rc] = true
			c.out = append(c.out, c.fill(f.emittedFor, e))
		}
		return true
	}
	return true
}

// claimFilter attaches a filter run's verdicts and children to the message
// that handed it the mail.
func (c *Correlator) claimFilter(f *filterRec, m *message, t time.Time) {
	delete(c.filters, f.host+"\x00"+f.id)
	for _, e := range f.verdicts {
		m.verdict[e.Recipient] = true
		if m.tr != nil {
			m.tr.verdict[e.Recipient] = true
		}
		c.add(m, e)
	}
	for _, ch := range f.children {
		c.link(ch, m)
	}
}

// expireFilter makes an unclaimed filter run a message of its own.
func (c *Correlator) expireFilter(f *filterRec) {
	delete(c.filters, f.host+"\x00"+f.id)
	if len(f.verdicts) == 0 && len(f.children) == 0 {
		return
	}
	m := c.get(f.host, "filter-"+f.id, f.first)
	m.started = true
	m.start = f.first
	m.messageID = f.messageID
	if m.tr == nil {
		c.release(m, newTrace(digest(f.host, "filter", f.id, f.first.Format(time.RFC3339Nano)), f.host))
	}
	c.claimFilter(f, m, f.first)
	m.removed, m.removedAt = true, c.now
}

// proxy handles PMG's before-queue filtering result on the smtpd session.
func (c *Correlator) proxy(host string, t time.Time, raw string, r Record, pid int) bool {
	f := c.filters[host+"\x00"+r.FilterID]
	s := c.sessions[host+"\x00"+strconv.Itoa(pid)]
	m := c.get(host, "filter-"+r.FilterID+"-"+t.Format(time.RFC3339Nano), t)
	m.started = true
	m.start = t
	m.clientName, m.clientIP = s.clientName, s.clientIP
	if r.HasFrom {
		m.sender, m.senderKnown = r.From, true
	}
	if f != nil {
		m.messageID = f.messageID
		m.first = f.first
	}
	if m.tr == nil {
		first := t
		if f != nil {
			first = f.first
		}
		c.release(m, newTrace(digest(host, "filter", r.FilterID, first.Format(time.RFC3339Nano)), host))
	}
	e := c.newEvent(m, t, raw, store.EventReceive, "", "smtpd")
	e.ClientHostname, e.ClientIP = s.clientName, s.clientIP
	e.Detail = fmt.Sprintf("received from %s[%s], checked by the before-queue filter (%s)", s.clientName, s.clientIP, r.FilterID)
	c.add(m, e)
	if f != nil {
		c.claimFilter(f, m, t)
	}
	rc := store.NormalizeAddress(r.To)
	if r.Action == "proxy-reject" && rc != "" && !m.tr.verdict[rc] {
		e := c.newEvent(m, t, raw, store.EventFilterAsSpam, rc, "smtpd")
		e.Detail = r.Action + ": " + r.Response
		e.DSN = r.DSN
		e.SMTPResponse = r.Response
		c.add(m, e)
	}
	m.removed, m.removedAt = true, t
	return true
}

// amavis handles amavisd-new's verdict line.
func (c *Correlator) amavis(host string, t time.Time, raw string, r Record) bool {
	var typ store.EventType
	if r.Verdict == "Blocked" {
		typ = store.EventFilterAsSpam
		if strings.Contains(r.Flags, "Quarantined") {
			typ = store.EventQuarantine
		}
	}
	var m *message
	if r.QueueID != "" {
		m = c.get(host, r.QueueID, t)
		if r.Subject != "" && m.subject == "" {
			m.subject = r.Subject
			if m.tr != nil && m.tr.subject == "" {
				m.tr.subject = r.Subject
			}
		}
		if r.NewID != "" {
			c.linkID(host, r.NewID, m)
		}
	} else if r.NewID != "" {
		// no Queue-ID (e.g. mail that came through pickup): the new hop
		// carries the subject, and the first hop's "queued as" links them.
		ch := c.get(host, r.NewID, t)
		if r.Subject != "" && ch.subject == "" {
			ch.subject = r.Subject
		}
	}
	if typ == "" {
		return true
	}
	for _, rc := range r.Rcpts {
		rc = store.NormalizeAddress(rc)
		e := store.Event{
			ID:        eventID(host, r.FilterID, t, raw, typ, rc),
			Time:      t,
			Recipient: rc,
			Type:      typ,
			Source:    "amavis",
			Detail:    fmt.Sprintf("amavis: %s %s {%s}", r.Verdict, r.Category, r.Flags),
		}
		if m != nil {
			m.verdict[rc] = true
			if m.tr != nil {
				m.tr.verdict[rc] = true
			}
			c.add(m, e)
		} else {
			f := c.filter(host, r.FilterID, t)
			f.verdicts = append(f.verdicts, e)
		}
	}
	return true
}
