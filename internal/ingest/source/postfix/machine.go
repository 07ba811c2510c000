package postfix

import (
	"strconv"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The message state machine: a queue id's lifecycle (a hop) from its first
// line to its last, hops joined into traces, events held while a hop may
// turn out to be the later hop of another.

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
	from         origin // where its first hop came from (hopOrigin)

	rcpts        map[string]bool
	expandedFrom map[string]string
	resolved     map[string]string // address -> the original recipient it stands for (expand.go)
	verdict      map[string]bool   // a filter verdict decided this recipient
	direction    mailflow.Direction
	counted      bool // counted in Stats.Messages
	// what decides the direction of a trace made whole again after its
	// message was evicted (evict.go): it came from inside, it had
	// recipients inside, outside
	org, anyIn, anyOut bool
}

// origin is where the message came from: inside when any hop was
// authenticated or it was submitted on the server, else what its first
// hop's receipt says.
func (tr *trace) origin() origin {
	if tr.org || tr.sasl != "" || tr.local {
		return originInside
	}
	return tr.from
}

// message is one queue id lifecycle (one hop).
type message struct {
	host, qid   string
	first, last time.Time
	start       time.Time // time of client=/pickup, else first
	tr          *trace
	held        []mailflow.Event
	waiting     []*message // children linked while this one was held
	waitFor     *message   // the held parent whose waiting list holds this one
	noticeOf    string     // for a bounce notice: the original's queue id
	removedAt   time.Time
	rcpt        map[string]mailflow.Status
	// done: recipients with a final status known by their rcptHash only,
	// sorted (a removed message made whole again from its record, evict.go)
	done     []uint64
	verdict  map[string]bool   // a filter verdict decided this recipient
	expanded map[string]string // recipient -> the address it was expanded from
	resolved map[string]string // address -> the original recipient it stands for (a single-address alias, expand.go)
	exps     map[string]*expansion
	nrcpt    int // its qmgr line's count of recipients

	// a content filter's refusing reply, by recipient, held until the
	// filter's own verdict or the link wait (filterReply)
	awaiting map[string]*heldReply

	clientName, clientIP string
	origIP, sasl         string
	// own attributes, merged into the trace on release
	sender    string
	messageID string
	size      int64
	subject   string
	// its place in the list of messages in flight (evict.go)
	lru source.LRUNode[message]

	// the flags, together (one word, not one each: 20,000 messages in
	// flight)
	started     bool // client=/pickup seen
	linked      bool // a parent is known; wait for it
	pendingRoot bool // received from outside; emitted once DATA shows it is a message
	removed     bool
	submitted   bool
	aged        bool // past Config.PendingAfter (age)
	loopback    bool
	senderKnown bool // of the own attributes
}

func (c *Source) get(host, qid string, t time.Time) *message {
	k := host + "\x00" + qid
	m := c.msgs[k]
	if m == nil {
		m = &message{host: host, qid: qid, first: t, start: t, last: t}
		if r, ok := c.recall(host, qid); ok {
			// evicted earlier: the same trace, as if it had never left
			c.rehydrate(m, r)
		}
		c.msgs[k] = m
		if p := c.pendingLinks[k]; p != nil {
			delete(c.pendingLinks, k)
			c.link(m, p)
		}
	}
	c.inFlight.Touch(&m.lru, m)
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
func (c *Source) begin(host, qid string, t time.Time) *message {
	k := host + "\x00" + qid
	if m := c.msgs[k]; m != nil && m.removed && t.After(m.removedAt) {
		if m.tr == nil {
			c.releaseRoot(m)
		}
		c.releaseReplies(m, true)
		c.drop(k, m)
	} else if m == nil {
		// an evicted lifecycle that ended (or went idle) before t
		if r := c.peekEvicted(host, qid); r != nil && (r.flags&evRemoved != 0 && t.UnixNano() > r.removedAt() || t.UnixNano()-r.first > int64(c.cfg.MaxIdle)) {
			c.recall(host, qid)
		}
	}
	return c.get(host, qid, t)
}

// hasRcpt reports whether m knows the recipient rc (with a status or not).
func (m *message) hasRcpt(rc string) bool {
	if _, ok := m.rcpt[rc]; ok {
		return true
	}
	return doneRcpt(m.done, rc)
}

func newTrace(id, host string) *trace {
	// its maps are made by their first put: 20,000 messages in flight
	// would hold five empty maps each (~5 MB)
	return &trace{id: id, host: host}
}

// releaseRoot makes a held message a message of its own.
func (c *Source) releaseRoot(m *message) {
	if m.tr != nil {
		return
	}
	c.release(m, newTrace(traceIDFor(m.host, m.qid, m.start), m.host))
}

// releaseLocal makes a held message a message of its own that was
// submitted on the server itself (pickup, a bounce notice): from inside,
// from its first event on.
func (c *Source) releaseLocal(m *message) {
	if m.tr != nil {
		m.tr.local = true
		return
	}
	tr := newTrace(traceIDFor(m.host, m.qid, m.start), m.host)
	tr.local = true
	c.release(m, tr)
}

// release attaches m to tr and emits what it held.
func (c *Source) release(m *message, tr *trace) {
	if m.tr != nil {
		return
	}
	m.tr = tr
	c.merge(m)
	held := m.held
	m.held = nil
	for _, e := range held {
		c.env.Emit(c.fill(tr, e))
	}
	for _, ch := range m.waiting {
		ch.waitFor = nil
		c.release(ch, tr)
	}
	m.waiting = nil
}

// merge copies a hop's attributes into its trace where the trace has none.
func (c *Source) merge(m *message) {
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
	if tr.from == originUnknown && !m.linked {
		// the first hop's receipt; a content filter's re-injection
		// (linked) keeps it
		tr.from = hopOrigin(c.cfg.InternalNetworks, m.sasl, m.clientName, m.clientIP, m.origIP)
	}
	for to, from := range m.expanded {
		if tr.expandedFrom[to] == "" {
			put(&tr.expandedFrom, to, from)
		}
	}
	for to, from := range m.resolved {
		if tr.resolved[to] == "" {
			tr.setResolved(to, from)
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
func (c *Source) link(child, parent *message) {
	if child == parent || child.tr != nil {
		return
	}
	child.linked = true
	if parent.tr != nil {
		c.release(child, parent.tr)
		return
	}
	parent.waiting = append(parent.waiting, child)
	child.waitFor = parent
}

// linkID links the queue id newID on host to parent, now or when it appears.
func (c *Source) linkID(host, newID string, parent *message) {
	k := host + "\x00" + newID
	if ch := c.msgs[k]; ch != nil && !(ch.removed && ch.removedAt.Before(parent.first)) {
		c.link(ch, parent)
		return
	}
	c.pendingLinks[k] = parent
}

// add emits (or holds) an event of message m.
func (c *Source) add(m *message, e mailflow.Event) {
	if len(m.exps) > 0 && e.Recipient != "" {
		if x := m.unsettled(e.Recipient); x != nil {
			// a copy of an original recipient not settled yet (expand.go)
			x.held = append(x.held, e)
			return
		}
	}
	if m.tr == nil {
		m.held = append(m.held, e)
		return
	}
	c.merge(m)
	c.env.Emit(c.fill(m.tr, e))
}

// fill sets the message-level attributes of an event from its trace.
func (c *Source) fill(tr *trace, e mailflow.Event) mailflow.Event {
	if !tr.counted {
		tr.counted = true
		c.env.Stats.Messages++
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
		r := mailflow.NormalizeAddress(e.Recipient)
		if len(tr.resolved) > 0 && e.Type != mailflow.EventResolve {
			// a copy of a single-address alias: the original's row
			if o := tr.resolvedTo(r); o != r {
				e.Detail = "to " + r + ": " + e.Detail
				e.ExpandedFrom = ""
				r = o
			}
		}
		e.Recipient = r
		if e.Type != mailflow.EventExpand {
			put(&tr.rcpts, r, true)
		}
		if from := tr.expandedFrom[r]; from != "" && e.ExpandedFrom == "" {
			e.ExpandedFrom = from
		}
	}
	tr.direction = direction(c.cfg.AcceptedDomains, tr.origin(), tr.sender, tr.senderKnown, tr.rcpts, tr.anyIn, tr.anyOut)
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

func (c *Source) newEvent(m *message, t time.Time, raw string, typ mailflow.EventType, rcpt, source string) mailflow.Event {
	return mailflow.Event{
		ID:             eventID(m.host, m.qid, t, raw, typ, rcpt),
		Time:           t,
		Recipient:      mailflow.NormalizeAddress(rcpt),
		Type:           typ,
		Source:         source,
		ServerHostname: m.host,
	}
}

// apply handles one record and reports whether it was used.
func (c *Source) apply(host string, t time.Time, raw string, r Record, pid int) bool {
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
		m.loopback = (r.ClientIP != "" && source.IsLoopback(r.ClientIP)) || (r.ClientIP == "" && r.ClientName == "localhost")
		e := c.newEvent(m, t, raw, mailflow.EventReceive, "", r.Daemon)
		e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
		e.Detail = "received from " + r.ClientName + "[" + r.ClientIP + "] as queue id " + r.QueueID
		if r.OrigClientIP != "" {
			e.Detail += ", originally from " + r.OrigClientName + "[" + r.OrigClientIP + "]"
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
		e := c.newEvent(m, t, raw, mailflow.EventReceive, "", r.Daemon)
		e.Detail = "submitted locally by uid " + r.UID + " as queue id " + r.QueueID
		c.add(m, e)
		if m.tr == nil && !m.linked {
			c.releaseLocal(m)
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
		if r.NRcpt > 0 {
			m.nrcpt = r.NRcpt
		}
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
			e := c.newEvent(m, t, raw, mailflow.EventSubmit, "", r.Daemon)
			e.Detail = "queued: from=<" + r.From + ">, size=" + strconv.FormatInt(r.Size, 10) + ", nrcpt=" + strconv.Itoa(r.NRcpt)
			c.add(m, e)
		}
		return true
	case KindDelivery:
		c.delivery(host, t, raw, r)
		return true
	case KindExpired:
		m := c.get(host, r.QueueID, t)
		c.settle(m, true)
		for rc, st := range m.rcpt {
			if st == mailflow.StatusPending || st == "" {
				e := c.newEvent(m, t, raw, mailflow.EventFail, rc, r.Daemon)
				e.Detail = "expired in the queue, returned to sender"
				put(&m.rcpt, rc, mailflow.StatusFailed)
				c.add(m, e)
			}
		}
		return true
	case KindRemoved:
		m := c.get(host, r.QueueID, t)
		m.removed = true
		m.removedAt = t
		c.settle(m, true)
		c.retire(m)
		return true
	case KindNotify:
		m := c.get(host, r.QueueID, t)
		n := c.get(host, r.NewID, t)
		n.noticeOf = r.QueueID
		n.linked = false
		ne := c.newEvent(n, t, raw, mailflow.EventReceive, "", r.Daemon)
		ne.Detail = r.NotifyKind + " for queue id " + r.QueueID
		if m.tr != nil {
			ne.Detail += " (message trace " + m.tr.id + ")"
		}
		c.add(n, ne)
		c.releaseLocal(n)
		e := c.newEvent(m, t, raw, mailflow.EventNotify, "", r.Daemon)
		e.Detail = r.NotifyKind + " queued as " + r.NewID + " (message trace " + n.tr.id + ")"
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

func (c *Source) delivery(host string, t time.Time, raw string, r Record) {
	m := c.get(host, r.QueueID, t)
	rcpt := mailflow.NormalizeAddress(r.To)
	orig := mailflow.NormalizeAddress(r.OrigTo)
	if orig == rcpt {
		orig = ""
	}
	if orig != "" {
		// a copy of an original recipient (expand.go): what the line
		// brings for rcpt (a filter's verdicts too) waits with it
		orig = m.resolvedTo(orig)
		m.copyTarget(orig, rcpt, t)
	}
	detail := "status=" + r.Status + " via " + r.Relay + ": " + r.Response
	filter := isFilterRelay(c.cfg.ContentFilters, r.RelayIP, r.RelayPort, r.NewID)
	verdictKnown := false
	if filter && r.Status == "sent" {
		if f := c.filters[host+"\x00"+r.FilterID]; r.FilterID != "" && f != nil {
			c.claimFilter(f, m, t)
		}
		verdictKnown = m.verdict[rcpt] || (m.tr != nil && m.tr.verdict[rcpt])
		if r.NewID != "" {
			detail = "handed to content filter " + r.Relay + ", queued as " + r.NewID + ": " + r.Response
		} else {
			detail = "handed to content filter " + r.Relay + ": " + r.Response
		}
	}
	var typ mailflow.EventType
	hold := false
	if filter && r.Status == "sent" {
		// an amavis reply names its run (id=...): its verdict may come
		typ, hold = filterReply(r.Response, verdictKnown, r.FilterID != "" && !isPMGID(r.FilterID))
	} else {
		typ = deliveryType(r.Status, r.Daemon, r.Response, filter, verdictKnown)
	}
	e := c.newEvent(m, t, raw, typ, rcpt, r.Daemon)
	e.Detail = detail
	e.Relay = r.Relay
	e.ToIP = r.RelayIP
	e.DSN = r.DSN
	e.SMTPResponse = r.Response
	if s, ok := mailflow.StatusOf(typ); ok {
		put(&m.rcpt, rcpt, s)
	} else if !m.hasRcpt(rcpt) {
		put(&m.rcpt, rcpt, "")
	}
	switch {
	case hold:
		// what the line is once the verdict came: the other order's event
		handOver := e
		handOver.Type = heldReplyType(true)
		handOver.ID = eventID(m.host, m.qid, t, raw, handOver.Type, rcpt)
		if old := m.awaiting[rcpt]; old != nil {
			c.releaseReply(m, rcpt, false) // a second hand-over of the recipient: the first one's wait is over
		}
		if m.awaiting == nil {
			m.awaiting = map[string]*heldReply{}
		}
		if len(m.awaiting) == 0 {
			c.nAwaiting++
		}
		m.awaiting[rcpt] = &heldReply{orig: orig, daemon: r.Daemon, at: t, refusal: e, handOver: handOver}
	case orig != "":
		c.copyOf(m, orig, rcpt, r.Daemon, t, e)
	default:
		c.add(m, e)
	}
	c.settle(m, false)
	if filter && r.Status == "sent" && r.NewID != "" {
		// after settling: the next hop, released now, is traced under
		// the original recipients
		c.linkID(host, r.NewID, m)
	}
}

// action handles smtpd rejects (NOQUEUE or with a queue id) and cleanup /
// milter actions.
func (c *Source) action(host string, t time.Time, raw string, r Record) {
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
		e := c.newEvent(m, t, raw, mailflow.EventReceive, "", r.Daemon)
		e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
		e.Detail = r.Action + " " + r.Stage + " from " + r.ClientName + "[" + r.ClientIP + "] before queueing"
		c.add(m, e)
	} else {
		m = c.get(host, r.QueueID, t)
		if r.HasFrom && !m.senderKnown {
			m.sender, m.senderKnown = r.From, true
			if m.tr != nil && !m.tr.senderKnown {
				m.tr.sender, m.tr.senderKnown = r.From, true
			}
		}
		if r.Subject != "" && m.subject == "" {
			m.subject = r.Subject
			if m.tr != nil && m.tr.subject == "" {
				m.tr.subject = r.Subject
			}
		}
	}
	typ := actionType(r.Action, r.Stage, r.DSN, r.Reason)
	// The action concerns the whole message at cleanup and for DATA or
	// END-OF-MESSAGE, only the named recipient at RCPT.
	rcpts := []string{}
	if r.To != "" {
		rcpts = append(rcpts, mailflow.NormalizeAddress(r.To))
	}
	if r.Stage != "RCPT" {
		for rc := range m.rcpt {
			if rc != mailflow.NormalizeAddress(r.To) {
				rcpts = append(rcpts, rc)
			}
		}
	}
	if len(rcpts) == 0 {
		rcpts = append(rcpts, "")
	}
	for _, rc := range rcpts {
		e := c.newEvent(m, t, raw, typ, rc, r.Daemon)
		e.Detail = r.Action + ": " + r.Reason
		e.DSN = r.DSN
		e.SMTPResponse = r.Reason
		e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
		if typ == mailflow.EventRedirect {
			e.Detail = r.Action + " to " + r.Reason
		}
		if s, ok := mailflow.StatusOf(typ); ok && rc != "" {
			put(&m.rcpt, rc, s)
		}
		c.add(m, e)
	}
	if r.QueueID == "" {
		// refused before queueing: over (retire)
		c.retire(m)
	}
}

// put sets (*m)[k] = v, making the map if it is nil: a message's and a
// trace's maps are made by their first entry (most messages in flight of
// a busy log have none in some of them).
func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = map[K]V{}
	}
	(*m)[k] = v
}
