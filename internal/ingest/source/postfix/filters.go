package postfix

import (
	"strconv"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source/amavis"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Content-filter links: the runs of the filters beside Postfix (PMG's
// pmg-smtp-filter, amavis, PMG's before-queue proxy) and how they join the
// hop that handed them a message to the hop they handed it back as.

// filterRec is a PMG filter run (keyed by its filter id) or an amavis run
// (keyed by its id), waiting to be claimed by the hop that handed it the
// message.
type filterRec struct {
	host, id   string
	first      time.Time
	messageID  string
	verdicts   []mailflow.Event
	children   []*message
	rcptSeen   map[string]bool
	emittedFor *trace
}

func (c *Source) filter(host, id string, t time.Time) *filterRec {
	k := host + "\x00" + id
	f := c.filters[k]
	if f == nil {
		f = &filterRec{host: host, id: id, first: t, rcptSeen: map[string]bool{}}
		c.filters[k] = f
	}
	return f
}

// pmgFilter handles pmg-smtp-filter lines.
func (c *Source) pmgFilter(host string, t time.Time, raw string, r Record) bool {
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
		typ := mailflow.EventFilterAsSpam
		if r.Verdict == "quarantine" {
			typ = mailflow.EventQuarantine
		}
		rc := mailflow.NormalizeAddress(r.To)
		e := mailflow.Event{
			ID:        eventID(host, r.FilterID, t, raw, typ, rc),
			Time:      t,
			Recipient: rc,
			Type:      typ,
			Source:    r.Daemon,
			Detail:    r.Verdict + " mail to <" + r.To + "> (" + r.Reason + ")",
		}
		if r.Verdict == "quarantine" {
			e.Detail = "moved mail for <" + r.To + "> " + r.Reason
		}
		f.verdicts = append(f.verdicts, e)
		f.rcptSeen[rc] = true
		if f.emittedFor != nil {
			put(&f.emittedFor.verdict, rc, true)
			c.env.Emit(c.fill(f.emittedFor, e))
		}
		return true
	}
	return true
}

// claimFilter attaches a filter run's verdicts and children to the message
// that handed it the mail.
func (c *Source) claimFilter(f *filterRec, m *message, t time.Time) {
	delete(c.filters, f.host+"\x00"+f.id)
	for _, e := range f.verdicts {
		put(&m.verdict, e.Recipient, true)
		if m.tr != nil {
			put(&m.tr.verdict, e.Recipient, true)
		}
		c.add(m, e)
	}
	for _, ch := range f.children {
		c.link(ch, m)
	}
}

// expireFilter makes an unclaimed filter run a message of its own.
func (c *Source) expireFilter(f *filterRec) {
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
	m.removed, m.removedAt = true, c.env.Now
}

// proxy handles PMG's before-queue filtering result on the smtpd session.
func (c *Source) proxy(host string, t time.Time, raw string, r Record, pid int) bool {
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
	e := c.newEvent(m, t, raw, mailflow.EventReceive, "", "smtpd")
	e.ClientHostname, e.ClientIP = s.clientName, s.clientIP
	e.Detail = "received from " + s.clientName + "[" + s.clientIP + "], checked by the before-queue filter (" + r.FilterID + ")"
	c.add(m, e)
	if f != nil {
		c.claimFilter(f, m, t)
	}
	rc := mailflow.NormalizeAddress(r.To)
	if r.Action == "proxy-reject" && rc != "" && !m.tr.verdict[rc] {
		e := c.newEvent(m, t, raw, mailflow.EventFilterAsSpam, rc, "smtpd")
		e.Detail = r.Action + ": " + r.Response
		e.DSN = r.DSN
		e.SMTPResponse = r.Response
		c.add(m, e)
	}
	m.removed, m.removedAt = true, t
	return true
}

// amavis handles amavisd-new's verdict line. The verdict is read again
// from the line, by the amavis package, for what Record does not keep
// (hits, quarantine, mail_id).
func (c *Source) amavis(host string, t time.Time, raw string, r Record) bool {
	var typ mailflow.EventType
	if r.Verdict == "Blocked" {
		typ = mailflow.EventFilterAsSpam
		if strings.Contains(r.Flags, "Quarantined") {
			typ = mailflow.EventQuarantine
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
	// the verdict, its hits and quarantine (source/amavis): a Scan event
	// of the message when it passed, what its block says when blocked
	v, _ := amavis.Parse(raw)
	if typ == "" {
		e := amavis.ScanEvent(v)
		// amavis' run id and the time make it unique: a digest of them,
		// not of the line (long: it lists every recipient and the subject)
		e.ID = digest(host, "amavis-scan", r.FilterID, t.Format(time.RFC3339Nano))
		e.Time = t
		switch {
		case m != nil:
			c.add(m, e)
		case r.NewID != "":
			// held with the new hop until the first hop's "queued as"
			c.add(c.get(host, r.NewID, t), e)
		}
		return true
	}
	for _, rc := range r.Rcpts {
		rc = mailflow.NormalizeAddress(rc)
		e := mailflow.Event{
			ID:        eventID(host, r.FilterID, t, raw, typ, rc),
			Time:      t,
			Recipient: rc,
			Type:      typ,
			Source:    "amavis",
		}
		v.Fill(&e)
		if m != nil {
			put(&m.verdict, rc, true)
			if m.tr != nil {
				put(&m.tr.verdict, rc, true)
			}
			c.add(m, e)
			// Postfix's line of the reply came first: it is the hand-over
			c.releaseReply(m, rc, true)
		} else {
			f := c.filter(host, r.FilterID, t)
			f.verdicts = append(f.verdicts, e)
		}
	}
	return true
}

// heldReply is a content filter's refusing reply to the hand-over of one
// recipient, held while the filter's own verdict may still come
// (filterReply): the line's event as the refusal it is without the
// verdict, and as the hand-over it is with it.
type heldReply struct {
	orig, daemon      string // the original recipient (an alias' copy), the delivery agent
	at                time.Time
	refusal, handOver mailflow.Event
}

// releaseReply emits the reply held for rcpt: the hand-over when the
// filter's verdict came, else the refusal.
func (c *Source) releaseReply(m *message, rcpt string, verdictCame bool) {
	h := m.awaiting[rcpt]
	if h == nil {
		return
	}
	delete(m.awaiting, rcpt)
	if len(m.awaiting) == 0 {
		c.nAwaiting--
	}
	e := h.refusal
	if heldReplyType(verdictCame) == h.handOver.Type {
		e = h.handOver
	}
	if h.orig != "" {
		c.copyOf(m, h.orig, rcpt, h.daemon, h.at, e)
		return
	}
	c.add(m, e)
}

// releaseReplies emits the refusals of m's held replies that waited the
// link wait, or all of them (the hop is forgotten, evicted or flushed: no
// verdict will find it), in recipient order. (A hop still held itself
// holds them with its other events: add.)
func (c *Source) releaseReplies(m *message, all bool) {
	if len(m.awaiting) == 0 {
		return
	}
	for _, rc := range sortedKeys(m.awaiting) {
		if all || c.env.Now.Sub(m.awaiting[rc].at) > c.cfg.LinkWait {
			c.releaseReply(m, rc, false)
		}
	}
}
