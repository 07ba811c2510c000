// Package postfix is the ingest's source for Postfix logs, and for the
// lines of the content filters that sit beside Postfix: amavis, Proxmox
// Mail Gateway's pmg-smtp-filter, and rspamd through its milter. It joins
// them into messages: by host and queue id inside Postfix, and across a
// content filter by the new queue id the filter hands back ("queued as
// NEWID", PMG's "accept mail to <x> (NEWID)", amavis' "queued_as: NEWID"),
// so that one message keeps one MessageTraceID from the first hop to the
// last.
//
// Its files follow its concerns: prepare.go (what a line is worth, from
// the line alone), parse.go (the grammar of Postfix's messages), machine.go
// (the state machine of a queue id's lifecycle), filters.go (content-filter
// links), policy.go (pure decisions: what an event is, which way a message
// goes), ids.go (trace and event IDs) and state.go (what survives a
// restart).
//
// # Trace IDs and restarts
//
// A message's MessageTraceID is a digest of (host, queue id, start time) of
// its first hop, where the start time is the time of its smtpd `client=` or
// pickup line (or of the first line seen for it). Long queue ids
// (enable_long_queue_ids, "4PbC4x469Jz3tBr") already encode their creation
// time and are never reused, so for them the start time is left out of the
// digest: the ID depends on nothing but the host and the queue id, and a
// source restarted mid-lifecycle with no state at all still gives the
// later lines of that message the same trace ID. Short queue ids
// ("21BCE3807B6") are reused, so their trace ID needs the start time, which
// only the source's state knows: a restart without State/Restore gives the
// rest of such a lifecycle a new trace ID (the store then shows the message
// twice, the second part starting at the restart). State and Restore carry
// that state (and messages held for a link) across a restart; Event IDs are
// digests of (host, queue id, line) and stay stable either way, so a replay
// after a restart stores nothing twice.
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
package postfix

import (
	"sort"
	"strconv"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
)

// Reasons a line of Postfix is not understood, keys of
// source.Stats.NotUnderstood.
const (
	ReasonUnknownLine   = "unknown postfix line"
	ReasonUnknownQueue  = "line for an unknown message" // e.g. a filter verdict never claimed
	ReasonUnusableEvent = "unusable event"
)

// Source correlates Postfix's lines (source.Source).
type Source struct {
	cfg     source.Config
	env     *source.Env
	msgs    map[string]*message
	filters map[string]*filterRec
	// pendingLinks: a child queue id announced before any of its lines.
	pendingLinks map[string]*message
	sessions     map[string]session
	traceIDs     map[string]string // host\x00qid -> trace id of a message no longer in msgs (reset past 65,536)
	// the cap on messages in flight (evict.go): msgs in a list, most
	// recently active first; the compact records of evicted messages in a
	// ring, by the hash of their key
	inFlight source.LRU[message]
	evRing   *source.Ring[uint64, evicted]

	// nAwaiting counts the messages holding a content filter's reply for
	// its verdict (filterReply): Sweep looks for them only when there are
	nAwaiting int
}

// New returns the Postfix source: it emits into env and counts there.
func New(cfg source.Config, env *source.Env) source.Source {
	return &Source{
		cfg:          cfg,
		env:          env,
		msgs:         map[string]*message{},
		filters:      map[string]*filterRec{},
		pendingLinks: map[string]*message{},
		sessions:     map[string]session{},
		traceIDs:     map[string]string{},
		evRing:       source.NewRing[uint64, evicted](cfg.MaxEvicted),
	}
}

// TraceID returns the trace ID of the latest lifecycle of a queue id on a
// host, while the source still remembers it ("" otherwise, or while the
// message is held).
func (c *Source) TraceID(host, queueID string) string {
	if m := c.msgs[host+"\x00"+queueID]; m != nil && m.tr != nil {
		return m.tr.id
	}
	if id := c.traceIDs[host+"\x00"+queueID]; id != "" {
		return id
	}
	if r := c.peekEvicted(host, queueID); r != nil {
		return r.traceID()
	}
	return ""
}

// Consume reads one line Prepare claimed.
func (c *Source) Consume(l *source.Line) {
	if l.Ignore {
		// kept: the end of an smtpd session
		c.disconnect(l.Host, l.PID, l.Flags&flagData != 0)
		c.env.Stats.Ignored++
		return
	}
	rec := ParseMessage(l.Daemon, l.Message)
	if l.Flags&flagDisconnect != 0 {
		c.disconnect(l.Host, l.PID, l.Flags&flagData != 0)
	}
	used := c.apply(l.Host, l.UTC, l.Raw, rec, l.PID)
	switch {
	case rec.Kind == KindIgnored:
		c.env.Stats.Ignored++
	case rec.Kind == KindUnknown:
		c.env.Stats.Skip(ReasonUnknownLine)
	case !used:
		c.env.Stats.Skip(ReasonUnknownQueue)
	default:
		c.env.Stats.Used++
	}
	c.capInFlight()
}

// Flush releases every held message and unclaimed filter run as a message
// of its own. Remembered lifecycles are kept.
func (c *Source) Flush() {
	for _, f := range c.sortedFilters(func(*filterRec) bool { return true }) {
		c.expireFilter(f)
	}
	for _, m := range c.sortedMsgs(func(m *message) bool { return len(m.exps) > 0 }) {
		c.settle(m, true)
	}
	// the hops that handed a held hop over first: a content filter's
	// second hop (linked, earlier in the log than the "queued as" of its
	// first hop) goes with its first hop's trace, not one of its own
	for _, m := range c.sortedMsgs(func(m *message) bool { return m.tr == nil && !m.linked }) {
		c.releaseRoot(m)
	}
	for _, m := range c.sortedMsgs(func(m *message) bool { return m.tr == nil }) {
		c.releaseRoot(m)
	}
	// a content filter's replies still waiting for its verdict
	if c.nAwaiting > 0 {
		for _, m := range c.sortedMsgs(func(m *message) bool { return len(m.awaiting) > 0 }) {
			c.releaseReplies(m, true)
		}
	}
}

// session is an smtpd process's current client (by host and pid).
type session struct {
	clientName, clientIP string
	qid                  string // the queue id of the session's current transaction
	seen                 time.Time
}

// disconnect ends an smtpd session: a transaction still waiting for DATA
// was abandoned (or was a verification probe) unless the session did send
// DATA or BDAT (then it is a message whose other lines are late).
func (c *Source) disconnect(host string, pid int, data bool) {
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
	c.drop(mk, m)
	c.env.Stats.Abandoned++
}

// sortedFilters and sortedMsgs select in a stable order (first seen, then
// key) so that what a sweep or a flush emits does not depend on map order.
func (c *Source) sortedFilters(keep func(*filterRec) bool) []*filterRec {
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

func (c *Source) sortedMsgs(keep func(*message) bool) []*message {
	var out []*message
	for _, m := range c.msgs {
		if keep(m) {
			out = append(out, m)
		}
	}
	sortMsgs(out)
	return out
}

// sortMsgs sorts messages by first seen, then key.
func sortMsgs(out []*message) {
	if len(out) < 2 {
		return
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].first.Equal(out[j].first) {
			return out[i].first.Before(out[j].first)
		}
		return out[i].host+out[i].qid < out[j].host+out[j].qid
	})
}

// reinjectWait is how long (log time) a message received from a loopback
// client without SASL waits to be linked as a content filter's
// re-injection. The filter's "queued as" comes as soon as the re-injection
// is queued (the filter answers the first hop then), well within it; a
// program on the server itself that hands its mail to smtpd on 127.0.0.1
// is then traced after this, not after LinkWait (issue 16, the mail lab's
// loopback-client).
const reinjectWait = 30 * time.Second

// reinjection reports whether m is held only as a possible content
// filter's re-injection: received from loopback without SASL, not linked.
func (m *message) reinjection() bool {
	return m.started && m.loopback && m.sasl == "" && !m.linked && m.noticeOf == ""
}

// waitsForHeld reports whether m was linked to a hop that is held still
// (it is released with it).
func (c *Source) waitsForHeld(m *message) bool {
	p := m.waitFor
	return p != nil && p.tr == nil && c.msgs[p.host+"\x00"+p.qid] == p
}

// Sweep releases messages that waited too long for a link and forgets
// finished ones.
func (c *Source) Sweep() {
	if len(c.msgs) == 0 && len(c.filters) == 0 {
		// nothing held, nothing to age or forget (most sweeps: every 10 s
		// of log time, and a message lives for a few seconds)
		c.forgetSessions()
		return
	}
	for _, f := range c.sortedFilters(func(f *filterRec) bool { return c.env.Now.Sub(f.first) > c.cfg.LinkWait }) {
		c.expireFilter(f)
	}
	// one pass: the held hops that waited long enough, the expansions
	// that did
	var due, settling []*message
	for _, m := range c.msgs {
		if m.tr == nil {
			age := c.env.Now.Sub(m.first)
			if age > c.cfg.LinkWait || c.env.Now.Sub(m.last) > c.cfg.MaxIdle || (age > reinjectWait && m.reinjection()) {
				due = append(due, m)
			}
		}
		if len(m.exps) > 0 {
			settling = append(settling, m)
		}
	}
	sortMsgs(due)
	// a hop linked to a held one goes with it (Flush)
	for _, m := range due {
		if !m.linked {
			c.releaseRoot(m)
		}
	}
	for _, m := range due {
		if !c.waitsForHeld(m) {
			c.releaseRoot(m)
		}
	}
	sortMsgs(settling)
	for _, m := range settling {
		c.settleDue(m)
	}
	var ageing, forget, awaiting []*message
	// now.Sub(t) > d is t.Before(now.Add(-d)): the bounds once, not a
	// Sub (a hundred instructions) per message
	forgetBefore, idleBefore := c.env.Now.Add(-c.cfg.ForgetAfter), c.env.Now.Add(-c.cfg.MaxIdle)
	for k, m := range c.msgs {
		if (m.removed && m.removedAt.Before(forgetBefore)) || m.last.Before(idleBefore) {
			if len(m.awaiting) > 0 {
				forget = append(forget, m) // its held replies, in a stable order (below)
				continue
			}
			c.settle(m, true)
			c.drop(k, m)
			continue
		}
		if c.nAwaiting > 0 && len(m.awaiting) > 0 && m.tr != nil {
			awaiting = append(awaiting, m)
		}
		if !m.aged && !m.removed && m.tr != nil && c.cfg.PendingAfter > 0 && c.env.Now.Sub(m.first) > c.cfg.PendingAfter {
			ageing = append(ageing, m)
		}
	}
	// a content filter's replies whose verdict did not come within the link wait
	sortMsgs(awaiting)
	for _, m := range awaiting {
		c.releaseReplies(m, false)
	}
	sortMsgs(forget) // rare: a hop forgotten while a filter's reply waited for its verdict
	for _, m := range forget {
		c.settle(m, true)
		c.releaseReplies(m, true)
		c.drop(m.host+"\x00"+m.qid, m)
	}
	sortMsgs(ageing)
	for _, m := range ageing {
		c.age(m)
	}
	c.forgetSessions()
}

// forgetSessions is the end of Sweep: the smtpd sessions idle for an hour,
// the links announced and not followed within the link wait.
func (c *Source) forgetSessions() {
	if len(c.sessions) > 0 {
		hourBefore := c.env.Now.Add(-time.Hour)
		for k, s := range c.sessions {
			if s.seen.Before(hourBefore) {
				delete(c.sessions, k)
			}
		}
	}
	if len(c.pendingLinks) > 0 {
		for k, m := range c.pendingLinks {
			if c.env.Now.Sub(m.last) > c.cfg.LinkWait {
				delete(c.pendingLinks, k)
			}
		}
	}
	if len(c.traceIDs) > 1<<16 {
		c.traceIDs = map[string]string{}
	}
}
