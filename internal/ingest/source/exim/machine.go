package exim

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The state machine of a message: its arrival, its recipients' outcomes,
// its aliases' members, its end.

// message is one Exim message id on a host. Its exported fields are its
// saved state (state.go).
type message struct {
	Host        string    `json:"host"`
	ID          string    `json:"id"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Sender      string    `json:"sender,omitempty"`
	SenderKnown bool      `json:"senderKnown,omitempty"`
	MessageID   string    `json:"messageId,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	Size        int64     `json:"size,omitempty"`
	ClientIP    string    `json:"clientIp,omitempty"`
	Auth        string    `json:"auth,omitempty"`
	Local       bool      `json:"local,omitempty"`
	// DataReject: refused after DATA, its recipients not logged (join.go)
	DataReject *dataReject `json:"dataReject,omitempty"`
	// what decides the direction: from the organisation, recipients
	// inside, outside
	Org    bool `json:"org,omitempty"`
	AnyIn  bool `json:"anyIn,omitempty"`
	AnyOut bool `json:"anyOut,omitempty"`
	// Counted in Stats.Messages
	Counted     bool                       `json:"counted,omitempty"`
	Completed   bool                       `json:"completed,omitempty"`
	CompletedAt time.Time                  `json:"completedAt,omitzero"`
	Status      map[string]mailflow.Status `json:"status,omitempty"`
	Groups      map[string]*group          `json:"groups,omitempty"`
	// its place in the list of messages in flight (evict.go)
	lru source.LRUNode[message]
}

// group is an alias (a redirect router's address) and its members.
type group struct {
	Members []string  `json:"members"`
	Mode    uint8     `json:"mode,omitempty"`
	Since   time.Time `json:"since"`
	// Held are the members' events while the alias is undecided.
	Held []mailflow.Event `json:"held,omitempty"`
}

// Modes of a group.
const (
	groupPending  uint8 = iota // members still arriving: their events held
	groupResolved              // one member: its outcome is the alias's
	groupExpanded              // several: the alias Expanded, a row per member
)

// hasPending reports whether an alias of m waited longer than wait.
func (m *message) hasPending(now time.Time, wait time.Duration) bool {
	for _, g := range m.Groups {
		if g.Mode == groupPending && now.Sub(g.Since) > wait {
			return true
		}
	}
	return false
}

func (m *message) pendingGroups() []string {
	var out []string
	for a, g := range m.Groups {
		if g.Mode == groupPending {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Source) get(host, id string, t time.Time) *message {
	k := host + "\x00" + id
	m := c.msgs[k]
	if m == nil {
		m = &message{Host: host, ID: id, First: t, Last: t, Status: map[string]mailflow.Status{}}
		if r, ok := c.recall(host, id); ok {
			c.rehydrate(m, &r)
		}
		c.msgs[k] = m
	}
	c.inFlight.Touch(&m.lru, m)
	if t.After(m.Last) {
		m.Last = t
	}
	if t.Before(m.First) {
		m.First = t
	}
	return m
}

func (c *Source) newEvent(m *message, t time.Time, raw string, typ mailflow.EventType, rcpt string) mailflow.Event {
	return mailflow.Event{
		ID:             eventID(m.Host, m.ID, t, raw, typ, rcpt),
		Time:           t,
		Recipient:      mailflow.NormalizeAddress(rcpt),
		Type:           typ,
		Source:         "exim",
		ServerHostname: m.Host,
	}
}

// add emits an event of message m, with the message's attributes.
func (c *Source) add(m *message, e mailflow.Event) {
	if !m.Counted {
		m.Counted = true
		c.env.Stats.Messages++
	}
	e.MessageTraceID = traceIDFor(m.Host, m.ID)
	e.Sender = m.Sender
	e.MessageID = m.MessageID
	e.Subject = m.Subject
	e.Size = m.Size
	if m.ClientIP != "" && !source.IsLoopback(m.ClientIP) && validIP(m.ClientIP) {
		e.FromIP, e.OriginalClientIP = m.ClientIP, m.ClientIP
	}
	e.Received = m.First
	if e.Recipient != "" && e.Type != mailflow.EventExpand {
		if source.Inside(c.cfg.AcceptedDomains, e.Recipient) {
			m.AnyIn = true
		} else {
			m.AnyOut = true
		}
	}
	e.Direction = direction(m.Org, m.SenderKnown, m.AnyIn, m.AnyOut)
	if !validIP(e.ClientIP) {
		e.ClientIP = ""
	}
	if !validIP(e.ToIP) {
		e.ToIP = ""
	}
	c.env.Emit(e)
}

func validIP(s string) bool {
	if s == "" {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// apply handles one line's record.
func (c *Source) apply(host string, t time.Time, raw string, r Record) {
	if r.Kind == KindReject {
		c.reject(host, t, raw, r)
		return
	}
	m := c.get(host, r.ID, t)
	switch r.Kind {
	case KindArrival:
		c.arrival(m, t, raw, r)
	case KindDelivery, KindFail, KindDefer:
		c.outcome(m, t, raw, r)
	case KindCompleted:
		m.Completed, m.CompletedAt = true, t
		c.decideAll(m)
	case KindFrozen:
		c.each(m, t, raw, mailflow.EventQuarantine, "frozen "+r.Reason, func(s mailflow.Status) bool {
			return s == "" || s == mailflow.StatusPending
		})
	case KindThawed:
		c.each(m, t, raw, mailflow.EventDefer, r.Reason+": delivery will be retried", func(s mailflow.Status) bool {
			return s == mailflow.StatusQuarantined
		})
	case KindRemoved:
		c.decideAll(m)
		c.each(m, t, raw, mailflow.EventFail, r.Reason, func(s mailflow.Status) bool {
			return s == "" || s == mailflow.StatusPending || s == mailflow.StatusQuarantined
		})
		m.Completed, m.CompletedAt = true, t
	}
}

func (c *Source) arrival(m *message, t time.Time, raw string, r Record) {
	m.First = t
	if r.HasSender {
		m.Sender, m.SenderKnown = mailflow.NormalizeAddress(r.Sender), true
	}
	m.MessageID, m.Subject, m.Size = r.MessageID, r.Subject, r.Size
	m.ClientIP, m.Auth = r.ClientIP, r.Auth
	m.Local = isLocal(r.Protocol, r.ClientIP, r.User)
	m.Org = fromOrg(c.cfg.AcceptedDomains, m.Sender, m.SenderKnown, m.ClientIP, m.Auth, m.Local)
	for _, rc := range r.Recipients {
		if source.Inside(c.cfg.AcceptedDomains, rc) {
			m.AnyIn = true
		} else {
			m.AnyOut = true
		}
	}
	e := c.newEvent(m, t, raw, mailflow.EventReceive, "")
	e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
	switch {
	case r.ClientIP != "":
		e.Detail = fmt.Sprintf("received from %s[%s] as message id %s (%s)", r.ClientName, r.ClientIP, m.ID, r.Protocol)
	case r.User != "":
		e.Detail = fmt.Sprintf("submitted locally by %s as message id %s (%s)", r.User, m.ID, r.Protocol)
	default:
		e.Detail = fmt.Sprintf("received as message id %s (%s)", m.ID, r.Protocol)
	}
	if r.Auth != "" {
		e.Detail += ", authenticated as " + authID(r.Auth)
	}
	if r.BounceOf != "" {
		orig := traceIDFor(m.Host, r.BounceOf)
		e.Detail = fmt.Sprintf("delivery status notification for message id %s (message trace %s), %s", r.BounceOf, orig, e.Detail)
		n := mailflow.Event{
			ID: eventID(m.Host, r.BounceOf, t, raw, mailflow.EventNotify, ""), Time: t, MessageTraceID: orig,
			Type: mailflow.EventNotify, Source: "exim", ServerHostname: m.Host,
			Detail: fmt.Sprintf("delivery status notification queued as message id %s (message trace %s)", m.ID, traceIDFor(m.Host, m.ID)),
		}
		if o := c.msgs[m.Host+"\x00"+r.BounceOf]; o != nil {
			c.add(o, n)
		} else {
			c.env.Emit(n)
		}
	}
	c.add(m, e)
}

// authID is the id of an A= field ("dovecot_plain:erin@example.com" gives
// "erin@example.com"); the authenticator alone when it names none.
func authID(a string) string {
	if _, id, ok := strings.Cut(a, ":"); ok && id != "" {
		return id
	}
	return a
}

// outcome handles a delivery, a failure or a deferral of one address.
func (c *Source) outcome(m *message, t time.Time, raw string, r Record) {
	rcpt, alias := recipientOf(r.Addr, r.Parent)
	typ := outcomeType(r.Kind)
	e := c.newEvent(m, t, raw, typ, rcpt)
	e.DSN = outcomeDSN(r.Kind, r.Confirmation, r.Reason)
	e.ToIP = r.HostIP
	if r.Host != "" || r.HostIP != "" {
		e.Relay = r.Host + "[" + r.HostIP + "]"
		if r.HostPort > 0 {
			e.Relay += fmt.Sprintf(":%d", r.HostPort)
		}
	} else if r.Transport != "" {
		e.Relay = r.Transport
	}
	switch r.Kind {
	case KindDelivery:
		e.SMTPResponse = r.Confirmation
		e.Detail = fmt.Sprintf("delivered by router %s, transport %s", r.Router, r.Transport)
		if e.Relay != "" && e.Relay != r.Transport {
			e.Detail += " to " + e.Relay
		}
		if r.Confirmation != "" {
			e.Detail += ": " + r.Confirmation
		}
	case KindFail:
		e.SMTPResponse = response(r.Reason)
		e.Detail = "failed: " + r.Reason
	case KindDefer:
		e.SMTPResponse = response(r.Reason)
		e.Detail = "deferred: " + r.Reason
	}
	if alias != "" {
		e.ExpandedFrom = alias
		c.member(m, alias, rcpt, e)
		return
	}
	m.Status[rcpt], _ = mailflow.StatusOf(typ)
	c.add(m, e)
}

// member handles an outcome of an alias's member.
func (c *Source) member(m *message, alias, rcpt string, e mailflow.Event) {
	if m.Groups == nil {
		m.Groups = map[string]*group{}
	}
	g := m.Groups[alias]
	if g == nil {
		g = &group{Since: e.Time}
		m.Groups[alias] = g
	}
	known := false
	for _, mb := range g.Members {
		known = known || mb == rcpt
	}
	switch g.Mode {
	case groupPending:
		if !known {
			g.Members = append(g.Members, rcpt)
		}
		g.Held = append(g.Held, e)
	case groupResolved:
		if known {
			c.emitResolved(m, alias, e)
			return
		}
		// a second member after all: the alias is a group from now on
		g.Mode = groupExpanded
		g.Members = append(g.Members, rcpt)
		c.emitExpand(m, alias, g, e)
		c.emitMember(m, e)
	case groupExpanded:
		if !known {
			g.Members = append(g.Members, rcpt)
		}
		c.emitMember(m, e)
	}
}

func (c *Source) emitMember(m *message, e mailflow.Event) {
	m.Status[e.Recipient], _ = mailflow.StatusOf(e.Type)
	c.add(m, e)
}

// emitResolved emits a member's event on the row of the alias it resolved.
func (c *Source) emitResolved(m *message, alias string, e mailflow.Event) {
	e.Detail = e.Recipient + ": " + e.Detail
	e.Recipient, e.ExpandedFrom = alias, ""
	m.Status[alias], _ = mailflow.StatusOf(e.Type)
	c.add(m, e)
}

func (c *Source) emitExpand(m *message, alias string, g *group, at mailflow.Event) {
	x := c.newEvent(m, at.Time, at.ID, mailflow.EventExpand, alias)
	x.Detail = fmt.Sprintf("%s was expanded to %s", alias, strings.Join(g.Members, ", "))
	m.Status[alias] = mailflow.StatusExpanded
	c.add(m, x)
}

// decide decides a pending alias on the members seen and emits what its
// members held.
func (c *Source) decide(m *message, alias string) {
	g := m.Groups[alias]
	if g == nil || g.Mode != groupPending || len(g.Held) == 0 {
		return
	}
	held := g.Held
	g.Held = nil
	if len(g.Members) == 1 {
		g.Mode = groupResolved
		x := c.newEvent(m, held[0].Time, held[0].ID, mailflow.EventResolve, alias)
		x.Detail = fmt.Sprintf("%s was resolved to %s", alias, g.Members[0])
		c.add(m, x)
		for _, e := range held {
			c.emitResolved(m, alias, e)
		}
		return
	}
	g.Mode = groupExpanded
	c.emitExpand(m, alias, g, held[0])
	for _, e := range held {
		c.emitMember(m, e)
	}
}

func (c *Source) decideAll(m *message) {
	for _, a := range m.pendingGroups() {
		c.decide(m, a)
	}
}

// each emits an event of type typ for each recipient whose status ok
// accepts, or one for the message when none does.
func (c *Source) each(m *message, t time.Time, raw string, typ mailflow.EventType, detail string, ok func(mailflow.Status) bool) {
	c.decideAll(m)
	var rcpts []string
	for rc, s := range m.Status {
		if ok(s) {
			rcpts = append(rcpts, rc)
		}
	}
	sort.Strings(rcpts)
	if len(rcpts) == 0 {
		rcpts = []string{""}
	}
	for _, rc := range rcpts {
		e := c.newEvent(m, t, raw, typ, rc)
		e.Detail = strings.TrimSpace(detail)
		if rc != "" {
			m.Status[rc], _ = mailflow.StatusOf(typ)
		}
		c.add(m, e)
	}
}

// reject handles an ACL's reject: a message of its own when it has no
// message id (refused before it had one), as Postfix's NOQUEUE rejects are.
func (c *Source) reject(host string, t time.Time, raw string, r Record) {
	dsn := rejectDSN(r.Temporary, r.Reason)
	typ := rejectType(r.Stage, dsn, r.Reason)
	var m *message
	if r.ID != "" {
		m = c.get(host, r.ID, t)
	} else {
		m = &message{Host: host, ID: "reject-" + digest(raw)[:12], First: t, Last: t, Status: map[string]mailflow.Status{}}
	}
	if r.HasSender && !m.SenderKnown {
		m.Sender, m.SenderKnown = mailflow.NormalizeAddress(r.Sender), true
	}
	if m.ClientIP == "" {
		m.ClientIP, m.Auth = r.ClientIP, r.Auth
		m.Local = isLocal("", r.ClientIP, r.User)
	}
	m.Org = fromOrg(c.cfg.AcceptedDomains, m.Sender, m.SenderKnown, m.ClientIP, m.Auth, m.Local)
	verb := "rejected"
	if r.Temporary {
		verb = "temporarily rejected"
	}
	if r.ID == "" || !m.Counted {
		// refused before queueing: no arrival ("<=") is logged (after DATA
		// the message has an id, and is not queued either)
		e := c.newEvent(m, t, raw, mailflow.EventReceive, "")
		e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
		e.Detail = fmt.Sprintf("%s at %s from %s[%s] before queueing", verb, r.Stage, r.ClientName, r.ClientIP)
		if r.ID != "" {
			e.Detail = fmt.Sprintf("%s after %s from %s[%s] (message id %s), not queued", verb, r.Stage, r.ClientName, r.ClientIP, r.ID)
		}
		c.add(m, e)
	}
	rej := &dataReject{Time: t, Raw: raw, Type: typ, DSN: dsn, Verb: verb, Stage: r.Stage, Reason: r.Reason, ClientName: r.ClientName, ClientIP: r.ClientIP}
	var rcpts []string
	if r.Addr != "" {
		rcpts = append(rcpts, mailflow.NormalizeAddress(r.Addr))
	} else if r.Stage != "RCPT" {
		for rc := range m.Status {
			rcpts = append(rcpts, rc)
		}
		sort.Strings(rcpts)
	}
	if len(rcpts) == 0 {
		rcpts = []string{""}
		if r.Stage == "DATA" && r.ID != "" {
			// Exim names no recipient: another source's line may
			// (TakeRecipients); the message is finished
			m.DataReject = rej
			m.Completed, m.CompletedAt = true, t
		}
	}
	for _, rc := range rcpts {
		c.rejectEvent(m, rej, rc)
	}
}
