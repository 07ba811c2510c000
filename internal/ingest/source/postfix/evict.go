package postfix

import (
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The cap on messages in flight (source.Config.MaxInFlight). The messages
// the source keeps whole are in a source.LRU, most recently active first; past
// the cap the least recently active is evicted: what it held is emitted as
// the ageing sweep would (a message of its own, with its current state),
// and a compact record of it stays, in a source.Ring of at most
// source.Config.MaxEvicted: its trace ID and what a late line needs for
// the rows to come out as they would have (its recipients, its
// expansions, its filter verdicts, whether it was queued or removed, and
// what decides the direction). A late line finds the record, makes the
// message whole again under the same trace ID and goes on as if it had
// never left. The message-level attributes (sender, subject, ...) are not
// kept: they were emitted already, and the store never erases a known
// value with an empty one. Past MaxEvicted the oldest record is forgotten,
// and a line for it then starts a new trace.
//
// A removed message (qmgr's "removed": its lifecycle is over) becomes such
// a record as soon as nothing of it waits (retire), instead of staying
// whole for Config.ForgetAfter: its rows are final, and a late line finds
// it as it finds an evicted one. The record of a removed message keeps
// its recipients that have a final status as a hash each (a late line
// needs to know them, not to name them: doneRcpt); and it is forgotten
// ForgetAfter (log time) after the removal, as the whole message would
// have been (expireRecords), not only once MaxEvicted newer records came.

// evicted is the compact record of an evicted message: no pointer but
// done and more, which are nil for a message that had no recipient yet.
// The records are in a source.Ring by the keyHash of host and queue id.
type evicted struct {
	id    [10]byte // the trace ID, when it is 20 hex digits (digest's)
	flags uint8
	first int64 // unix nanoseconds
	// rm: of a removed message, when and which recipients are done; nil
	// for the others (the 320,000 records of 1M messages that never
	// finish: 40 bytes a record, not 64)
	rm   *removal
	more *evictedMore
}

// removal is what the record of a removed message adds.
type removal struct {
	at int64 // unix nanoseconds, when removed
	// done: the rcptHash of each recipient with a final status, sorted
	// (the others are in more.rcpt)
	done []uint64
}

// removedAt returns when the message was removed (unix nanoseconds; 0:
// not removed).
func (r *evicted) removedAt() int64 {
	if r.rm == nil {
		return 0
	}
	return r.rm.at
}

// done returns the rcptHash of each recipient with a final status, sorted.
func (r *evicted) done() []uint64 {
	if r.rm == nil {
		return nil
	}
	return r.rm.done
}

// setRemoval sets when the message was removed and its done recipients
// (no removal kept when both are zero).
func (r *evicted) setRemoval(at int64, done []uint64) {
	if at == 0 && len(done) == 0 {
		r.rm = nil
		return
	}
	r.rm = &removal{at: at, done: done}
}

const (
	evSubmitted uint8 = 1 << iota
	evStarted
	evRemoved
	evSenderKnown
	evOrg // it came from inside (trace.origin, or its sender's domain when that is unknown): its direction
	evAnyIn
	evAnyOut
	evLocal
)

// evictedMore is the part of a record most messages do not need.
type evictedMore struct {
	id string // a trace ID that is not 20 hex digits
	// rcpt: the recipients and their statuses, but those in done
	rcpt         map[string]mailflow.Status
	expandedFrom map[string]string
	resolved     map[string]string
	verdicts     []string
}

// keyHash is FNV-1a (64 bits) of host, a zero byte and the queue id: a
// record keeps no string. Two keys of one hash (an accident of 1 in 2^64
// per pair) would join a late line to the other's trace.
func keyHash(host, qid string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(host); i++ {
		h = (h ^ uint64(host[i])) * 1099511628211
	}
	h *= 1099511628211 // the zero byte
	for i := 0; i < len(qid); i++ {
		h = (h ^ uint64(qid[i])) * 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

// rcptHash is FNV-1a (64 bits) of a recipient's address: how the record
// of a removed message knows the recipients whose status is final.
func rcptHash(rc string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(rc); i++ {
		h = (h ^ uint64(rc[i])) * 1099511628211
	}
	return h
}

// finalStatus reports whether a recipient's status is final for the record
// of a removed message: a late line cannot need its address (Expired and
// age look for the recipients with no status or Pending; a reject at
// cleanup or smtpd, which names every recipient, comes before the removal).
func finalStatus(st mailflow.Status) bool {
	return st != "" && st != mailflow.StatusPending
}

// doneRcpt reports whether rc is one of the recipients done holds
// (sorted rcptHash values).
func doneRcpt(done []uint64, rc string) bool {
	if len(done) == 0 {
		return false
	}
	_, ok := slices.BinarySearch(done, rcptHash(rc))
	return ok
}

// status returns st as the constant it is (a record then holds no copy of
// a log line's bytes), or a copy of it.
func status(st mailflow.Status) mailflow.Status {
	for _, s := range mailflow.AllStatuses {
		if st == s {
			return s
		}
	}
	return mailflow.Status(strings.Clone(string(st)))
}

// drop forgets the message m, key k, for good.
func (c *Source) drop(k string, m *message) {
	c.unlist(k, m)
	if m.tr != nil {
		// TraceID answers it from the trace-ID map from now on (a message
		// in flight is answered by msgs: the map holds only those gone)
		c.traceIDs[k] = m.tr.id
	}
}

// unlist takes m, key k, out of the messages in flight, leaving no trace
// ID behind (its record answers TraceID).
func (c *Source) unlist(k string, m *message) {
	delete(c.msgs, k)
	c.inFlight.Remove(&m.lru)
}

// capInFlight evicts the least recently active messages over the cap.
func (c *Source) capInFlight() {
	for skips := 0; ; {
		m := c.inFlight.Over(len(c.msgs), c.cfg.MaxInFlight)
		if m == nil {
			return
		}
		if skips < maxEvictSkips && m.tr == nil && !m.pendingRoot && c.env.Now.Sub(m.first) <= c.cfg.LinkWait {
			// a hop waiting for the hop that handed it over (a content
			// filter's re-injection comes before the "queued as" that
			// links it): another turn, lest it become a trace of its own
			skips++
			c.inFlight.Touch(&m.lru, m)
			continue
		}
		c.evict(m)
	}
}

// maxEvictSkips bounds the held messages capInFlight passes over for one
// line: the cap holds whatever the messages.
const maxEvictSkips = 4

// evict releases m (as the ageing sweep would) and keeps a compact record
// of it.
func (c *Source) evict(m *message) {
	c.settle(m, true)
	if m.tr == nil {
		c.releaseRoot(m)
	}
	c.releaseReplies(m, true)
	k := m.host + "\x00" + m.qid
	c.env.Stats.Evicted++
	if c.cfg.MaxEvicted <= 0 {
		c.drop(k, m)
		return
	}
	// TraceID finds the record: the trace-ID map would keep a second
	// copy of it (a key and an ID: ~100 bytes) for up to 65,536 evicted
	// messages
	c.unlist(k, m)
	delete(c.traceIDs, k) // an earlier lifecycle's
	c.remember(keyHash(m.host, m.qid), c.record(m))
}

// retire makes a removed message a compact record at once when nothing of
// it waits (see quiet): a late line finds the record as it would have
// found the message, for ForgetAfter (expireRecords). Without records
// (MaxEvicted 0) the message stays whole until the sweep forgets it.
func (c *Source) retire(m *message) {
	if c.cfg.MaxEvicted <= 0 || !c.quiet(m) {
		return
	}
	k := m.host + "\x00" + m.qid
	c.unlist(k, m)
	delete(c.traceIDs, k) // TraceID finds the record (an earlier lifecycle's entry)
	c.remember(keyHash(m.host, m.qid), c.record(m))
}

// quiet reports whether the removed message m holds nothing a sweep or a
// later line of another message would still act on: it is released (a
// trace of its own or a hop's), holds no event, no content filter's reply,
// no unsettled expansion, and no content filter's record names it.
func (c *Source) quiet(m *message) bool {
	if !m.removed || m.tr == nil || len(m.held) > 0 || len(m.awaiting) > 0 || len(m.waiting) > 0 || m.waitFor != nil {
		return false
	}
	for _, x := range m.exps {
		if !x.settled || len(x.held) > 0 {
			return false
		}
	}
	for _, f := range c.filters {
		if slices.Contains(f.children, m) {
			return false
		}
	}
	return true
}

// expireRecords forgets the records of messages removed more than
// ForgetAfter ago (log time), as the sweep forgets such a message kept
// whole; remember calls it, so the ring grows only for records that may
// still be needed. The ring is in the order the records came: one not done with (a
// message not removed, or removed later) keeps those behind it until their
// turn, or until MaxEvicted newer records push them out.
func (c *Source) expireRecords() {
	if c.evRing.Len() == 0 || c.cfg.ForgetAfter <= 0 || c.env.Now.IsZero() {
		return
	}
	before := c.env.Now.Add(-c.cfg.ForgetAfter).UnixNano()
	c.evRing.Expire(func(r evicted) bool { return r.flags&evRemoved != 0 && r.removedAt() < before })
}

// record makes the compact record of a released message.
func (c *Source) record(m *message) evicted {
	tr := m.tr
	r := evicted{first: m.first.UnixNano()}
	var removedAt int64
	var done []uint64
	if m.removed {
		r.flags |= evRemoved
		removedAt = m.removedAt.UnixNano()
	}
	if m.submitted {
		r.flags |= evSubmitted
	}
	if m.started {
		r.flags |= evStarted
	}
	if tr.senderKnown {
		r.flags |= evSenderKnown
	}
	if tr.local {
		r.flags |= evLocal
	}
	in, out := tr.anyIn, tr.anyOut
	for rc := range tr.rcpts {
		if source.Inside(c.cfg.AcceptedDomains, rc) {
			in = true
		} else {
			out = true
		}
	}
	if in {
		r.flags |= evAnyIn
	}
	if out {
		r.flags |= evAnyOut
	}
	if o := tr.origin(); o == originInside || o == originUnknown && tr.sender != "" && source.Inside(c.cfg.AcceptedDomains, tr.sender) {
		r.flags |= evOrg
	}
	var more evictedMore
	if id, ok := source.PackTraceID(tr.id); ok {
		r.id = id
	} else {
		more.id = tr.id
	}
	for rc, st := range m.rcpt {
		if m.removed && finalStatus(st) {
			done = append(done, rcptHash(rc))
			continue
		}
		if more.rcpt == nil {
			more.rcpt = make(map[string]mailflow.Status, len(m.rcpt))
		}
		more.rcpt[strings.Clone(rc)] = status(st)
	}
	for _, h := range m.done {
		// known by their hash since an earlier record: unless a line
		// named them again (in m.rcpt now)
		if !hashIn(more.rcpt, h) {
			done = append(done, h)
		}
	}
	// sorted, each once (a recipient both in m.done and final in m.rcpt)
	slices.Sort(done)
	r.setRemoval(removedAt, slices.Clip(slices.Compact(done)))
	for to, from := range tr.expandedFrom {
		if more.expandedFrom == nil {
			more.expandedFrom = make(map[string]string, len(tr.expandedFrom))
		}
		more.expandedFrom[strings.Clone(to)] = strings.Clone(from)
	}
	for to, from := range tr.resolved {
		if more.resolved == nil {
			more.resolved = make(map[string]string, len(tr.resolved))
		}
		more.resolved[strings.Clone(to)] = strings.Clone(from)
	}
	for rc := range tr.verdict {
		more.verdicts = append(more.verdicts, strings.Clone(rc))
	}
	for rc := range m.verdict {
		if !tr.verdict[rc] {
			more.verdicts = append(more.verdicts, strings.Clone(rc))
		}
	}
	if more.id != "" || more.rcpt != nil || more.expandedFrom != nil || more.resolved != nil || more.verdicts != nil {
		r.more = &more
	}
	return r
}

// hashIn reports whether one of the recipients of rcpt has the rcptHash h.
func hashIn(rcpt map[string]mailflow.Status, h uint64) bool {
	for rc := range rcpt {
		if rcptHash(rc) == h {
			return true
		}
	}
	return false
}

// remember keeps a record in the ring, forgetting the oldest when full,
// and those done with (expireRecords: before the ring grows for it).
func (c *Source) remember(key uint64, r evicted) {
	c.expireRecords()
	c.evRing.Put(key, r)
}

// recall returns the record of an evicted message and forgets it there.
func (c *Source) recall(host, qid string) (evicted, bool) {
	if c.evRing.Len() == 0 {
		return evicted{}, false
	}
	return c.evRing.Take(keyHash(host, qid))
}

// peekEvicted returns the record of an evicted message, leaving it there.
func (c *Source) peekEvicted(host, qid string) *evicted {
	if c.evRing.Len() == 0 {
		return nil
	}
	return c.evRing.Peek(keyHash(host, qid))
}

func (r *evicted) traceID() string {
	if r.more != nil && r.more.id != "" {
		return r.more.id
	}
	return hex.EncodeToString(r.id[:])
}

// rehydrate makes the message m (new, empty) whole again from its record:
// the same trace ID, the statuses its recipients had.
func (c *Source) rehydrate(m *message, r evicted) {
	first := time.Unix(0, r.first).UTC()
	m.first, m.start = first, first
	m.started = r.flags&evStarted != 0
	m.submitted = r.flags&evSubmitted != 0
	if r.flags&evRemoved != 0 {
		m.removed, m.removedAt = true, time.Unix(0, r.removedAt()).UTC()
	}
	tr := newTrace(r.traceID(), m.host)
	tr.received = first
	tr.counted = true
	tr.senderKnown = r.flags&evSenderKnown != 0
	tr.local = r.flags&evLocal != 0
	tr.org = r.flags&evOrg != 0
	if !tr.org {
		tr.from = originOutside
	}
	tr.anyIn, tr.anyOut = r.flags&evAnyIn != 0, r.flags&evAnyOut != 0
	m.done = r.done()
	if r.more != nil {
		for rc, st := range r.more.rcpt {
			put(&m.rcpt, rc, st)
		}
		if r.more.expandedFrom != nil {
			tr.expandedFrom = r.more.expandedFrom
		}
		if r.more.resolved != nil {
			tr.resolved = r.more.resolved
		}
		for _, rc := range r.more.verdicts {
			put(&tr.verdict, rc, true)
			put(&m.verdict, rc, true)
		}
	}
	m.tr = tr
}
