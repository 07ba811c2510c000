// Package demo holds what `mailtrace demo` needs: a deterministic generator
// of realistic mail events, and a local control plane to run the manager on.
package demo

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// OrgDomain is the organisation's primary domain in the demo data.
const OrgDomain = "example.com"

// Days is how far back the demo data goes.
const Days = 14

// The organisation's users, its distribution groups, and the outside world.
var (
	orgUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	groups   = map[string][]string{
		"all-staff@example.com": {"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"},
		"sales@example.com":     {"erin@example.com", "frank@example.com"},
	}
	groupNames = []string{"all-staff@example.com", "sales@example.com"}
)

type peer struct {
	addrs []string // correspondents at this peer
	host  string   // its MX / outbound relay
	ip    string
}

var (
	partner = peer{[]string{"ken.tanaka@partner.example", "yuki.sato@partner.example", "orders@partner.example"}, "mx.partner.example", "198.51.100.25"}
	vendor  = peer{[]string{"support@vendor.example", "billing@vendor.example"}, "mx.vendor.example", "198.51.100.40"}
	news    = peer{[]string{"newsletter@news.example"}, "out.news.example", "203.0.113.10"}
	spammer = peer{[]string{"promo@bulk-mail.example", "winner@lottery.example"}, "mta7.bulk-mail.example", "203.0.113.66"}
	outside = []peer{partner, vendor}
)

// Our own servers.
const (
	mxHost   = "mx1.example.com"
	mxIP     = "192.0.2.10"
	lmtpHost = "mail.example.com"
	lmtpIP   = "10.0.0.30"
)

var (
	outboundSubjects = []string{
		"Quote for Q3 renewal", "Re: Purchase order 4471", "Meeting notes from Tuesday",
		"Invoice INV-2026-0193", "Re: Shipping schedule", "Contract draft v2", "=SUM(A1:A9) totals attached",
	}
	inboundSubjects = []string{
		"Your order has shipped", "Re: Quote for Q3 renewal", "Updated price list",
		"【ご案内】来週の定例会議について", "Re: 見積書送付のお願い", "Support ticket #58213 updated",
		"Payment received - thank you",
	}
	internalSubjects = []string{"Lunch on Friday?", "Draft: team offsite agenda", "Re: VPN access", "Weekly report"}
	spamSubjects     = []string{"You have WON a prize!!!", "Cheap meds, no prescription", "Urgent: verify your account"}
)

// gen builds the events of one run; every random choice comes from rng, so
// one `now` always gives the same events.
type gen struct {
	rng    *rand.Rand
	now    time.Time
	seq    int
	events []mailflow.Event
}

// Generate returns the demo's events: about two weeks of mail flow of a small
// organisation (example.com) ending at now. It is deterministic: the same now
// gives the same events. Every delivery status occurs, and every direction.
func Generate(now time.Time) []mailflow.Event {
	now = now.UTC().Truncate(time.Second)
	g := &gen{rng: rand.New(rand.NewPCG(20260101, 42)), now: now}
	for d := Days - 1; d >= 0; d-- {
		dayEnd := now.Add(-time.Duration(d) * 24 * time.Hour).Add(-15 * time.Minute)
		at := func() time.Time {
			return dayEnd.Add(-time.Duration(g.rng.IntN(23*3600)) * time.Second)
		}
		// Every day sees every kind of traffic at least once...
		g.outboundDelivered(at())
		g.outboundDelivered(at())
		g.outboundDeferredThenDelivered(at())
		g.outboundBounce(at())
		g.inboundDelivered(at(), false)
		g.inboundDelivered(at(), true)
		g.inboundToGroup(at())
		g.inboundSpam(at())
		g.internal(at())
		g.inboundMailboxFull(at())
		if d%3 == 0 {
			g.inboundQuarantine(at())
		}
		// ... plus ordinary traffic in varying amounts.
		for i, n := 0, 6+g.rng.IntN(10); i < n; i++ {
			switch g.rng.IntN(4) {
			case 0:
				g.outboundDelivered(at())
			case 1, 2:
				g.inboundDelivered(at(), g.rng.IntN(5) == 0)
			default:
				g.internal(at())
			}
		}
	}
	// The last hours: deliveries still being retried, and messages so fresh
	// they have no outcome yet.
	g.inboundMailboxFull(now.Add(-2 * time.Hour))
	g.outboundDeferredThenDelivered(now.Add(-20 * time.Minute))
	g.inboundQuarantine(now.Add(-40 * time.Minute))
	g.fresh(now.Add(-3 * time.Minute))
	g.fresh(now.Add(-8 * time.Minute))

	sort.SliceStable(g.events, func(i, j int) bool { return g.events[i].Time.Before(g.events[j].Time) })
	return g.events
}

// msg is one message being generated.
type msg struct {
	g                  *gen
	id, messageID      string
	sender, subject    string
	size               int64
	dir                mailflow.Direction
	t0                 time.Time
	clientHost, client string // who handed it to us
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (g *gen) newMsg(t0 time.Time, sender, subject string, dir mailflow.Direction, clientHost, clientIP string) *msg {
	const alphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjkmnpqrstvwxyz"
	var id strings.Builder
	for range 12 {
		id.WriteByte(alphabet[g.rng.IntN(len(alphabet))])
	}
	domain := sender[strings.LastIndex(sender, "@")+1:]
	return &msg{
		g: g, id: id.String(),
		messageID:  fmt.Sprintf("<%s.%s@%s>", t0.Format("20060102150405"), strings.ToLower(id.String()[:8]), domain),
		sender:     sender,
		subject:    subject,
		size:       int64(2_000 + g.rng.IntN(180_000)),
		dir:        dir,
		t0:         t0,
		clientHost: clientHost, client: clientIP,
	}
}

// add appends an event at t0+dt unless that is still in the future.
func (m *msg) add(dt time.Duration, e mailflow.Event) bool {
	e.Time = m.t0.Add(dt)
	if e.Time.After(m.g.now) {
		return false
	}
	m.g.seq++
	e.ID = fmt.Sprintf("demo-%s-%d", m.id, m.g.seq)
	e.MessageTraceID = m.id
	m.g.events = append(m.g.events, e)
	return true
}

// receive records the message entering the organisation, with the
// message-level attributes.
func (m *msg) receive() {
	detail := fmt.Sprintf("message received from %s[%s]", m.clientHost, m.client)
	source := "postfix/smtpd"
	server, serverIP := mxHost, mxIP
	if m.dir != mailflow.DirectionInbound {
		source = "postfix/submission/smtpd"
		detail = fmt.Sprintf("message submitted by %s from %s[%s] (sasl_method=PLAIN)", m.sender, m.clientHost, m.client)
		server, serverIP = lmtpHost, "10.0.0.25"
	}
	m.add(0, mailflow.Event{
		Type: mailflow.EventReceive, Source: source, Detail: detail,
		MessageID: m.messageID, Sender: m.sender, Subject: m.subject, Size: m.size, Direction: m.dir,
		OriginalClientIP: m.client, FromIP: m.client, Received: m.t0,
		ServerHostname: server, ServerIP: serverIP, ClientHostname: m.clientHost, ClientIP: m.client,
	})
	m.add(time.Second, mailflow.Event{
		Type: mailflow.EventSubmit, Source: "postfix/qmgr",
		Detail: fmt.Sprintf("queued: from=<%s>, size=%d", m.sender, m.size),
	})
}

func (m *msg) deliverLocal(dt time.Duration, rcpt, expandedFrom string) bool {
	return m.add(dt, mailflow.Event{
		Type: mailflow.EventDeliver, Recipient: rcpt, Source: "postfix/lmtp", ExpandedFrom: expandedFrom,
		Relay: fmt.Sprintf("%s[%s]:24", lmtpHost, lmtpIP), ToIP: lmtpIP, DSN: "2.0.0",
		SMTPResponse: fmt.Sprintf("250 2.0.0 <%s> Saved", rcpt),
		Detail:       "delivered to mailbox",
	})
}

func (m *msg) deliverRemote(dt time.Duration, rcpt string, p peer) bool {
	return m.add(dt, mailflow.Event{
		Type: mailflow.EventDeliver, Recipient: rcpt, Source: "postfix/smtp",
		Relay: fmt.Sprintf("%s[%s]:25", p.host, p.ip), ToIP: p.ip, DSN: "2.0.0",
		SMTPResponse: "250 2.0.0 Ok: queued as " + strings.ToUpper(m.id[:10]),
		Detail:       "accepted by " + p.host,
	})
}

func (g *gen) orgUser() string { return pick(g.rng, orgUsers) + "@" + OrgDomain }

func (g *gen) submitter() (string, string) {
	return fmt.Sprintf("ws-%02d.corp.example.com", 10+g.rng.IntN(40)), fmt.Sprintf("10.0.1.%d", 10+g.rng.IntN(200))
}

func (g *gen) outboundDelivered(t0 time.Time) {
	host, ip := g.submitter()
	m := g.newMsg(t0, g.orgUser(), pick(g.rng, outboundSubjects), mailflow.DirectionOutbound, host, ip)
	m.receive()
	p := pick(g.rng, outside)
	m.deliverRemote(time.Duration(2+g.rng.IntN(8))*time.Second, pick(g.rng, p.addrs), p)
}

func (g *gen) outboundDeferredThenDelivered(t0 time.Time) {
	host, ip := g.submitter()
	m := g.newMsg(t0, g.orgUser(), pick(g.rng, outboundSubjects), mailflow.DirectionOutbound, host, ip)
	m.receive()
	rcpt := pick(g.rng, vendor.addrs)
	for i, dt := range []time.Duration{5 * time.Second, 10 * time.Minute, 30 * time.Minute} {
		m.add(dt, mailflow.Event{
			Type: mailflow.EventDefer, Recipient: rcpt, Source: "postfix/smtp", DSN: "4.4.1",
			Relay:  "none",
			Detail: fmt.Sprintf("connect to %s[%s]:25: Connection timed out (attempt %d)", vendor.host, vendor.ip, i+1),
		})
	}
	m.deliverRemote(75*time.Minute, rcpt, vendor)
}

func (g *gen) outboundBounce(t0 time.Time) {
	host, ip := g.submitter()
	m := g.newMsg(t0, g.orgUser(), pick(g.rng, outboundSubjects), mailflow.DirectionOutbound, host, ip)
	m.receive()
	// One good recipient and one that does not exist.
	m.deliverRemote(3*time.Second, "orders@partner.example", partner)
	bad := pick(g.rng, []string{"k.tanaka@partner.example", "sales-team@partner.example", "info@partner.example"})
	m.add(3*time.Second, mailflow.Event{
		Type: mailflow.EventFail, Recipient: bad, Source: "postfix/smtp",
		Relay: fmt.Sprintf("%s[%s]:25", partner.host, partner.ip), ToIP: partner.ip, DSN: "5.1.1",
		SMTPResponse: fmt.Sprintf("550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table", bad),
		Detail:       "bounced: the recipient's server says the mailbox does not exist",
	})
	m.add(4*time.Second, mailflow.Event{
		Type: mailflow.EventNotify, Source: "postfix/bounce",
		Detail: "sender non-delivery notification sent to " + m.sender,
	})
}

func (g *gen) inboundDelivered(t0 time.Time, japanese bool) {
	p := pick(g.rng, []peer{partner, partner, vendor, news})
	subject := pick(g.rng, inboundSubjects)
	if japanese {
		p = partner
		subject = pick(g.rng, inboundSubjects[3:5])
	}
	m := g.newMsg(t0, pick(g.rng, p.addrs), subject, mailflow.DirectionInbound, p.host, p.ip)
	m.receive()
	m.deliverLocal(time.Duration(1+g.rng.IntN(4))*time.Second, g.orgUser(), "")
}

func (g *gen) inboundToGroup(t0 time.Time) {
	group := pick(g.rng, groupNames)
	m := g.newMsg(t0, pick(g.rng, partner.addrs), "Holiday schedule and office closure", mailflow.DirectionInbound, partner.host, partner.ip)
	m.receive()
	members := groups[group]
	m.add(time.Second, mailflow.Event{
		Type: mailflow.EventExpand, Recipient: group, Source: "postfix/cleanup",
		Detail: fmt.Sprintf("expanded %s to %d members: %s", group, len(members), strings.Join(members, ", ")),
	})
	for i, rcpt := range members {
		m.deliverLocal(time.Duration(2+i)*time.Second, rcpt, group)
	}
}

func (g *gen) inboundSpam(t0 time.Time) {
	m := g.newMsg(t0, pick(g.rng, spammer.addrs), pick(g.rng, spamSubjects), mailflow.DirectionInbound, spammer.host, spammer.ip)
	rcpt := g.orgUser()
	m.add(0, mailflow.Event{
		Type: mailflow.EventReceive, Source: "postfix/smtpd",
		Detail:    fmt.Sprintf("connect from %s[%s]", spammer.host, spammer.ip),
		MessageID: m.messageID, Sender: m.sender, Subject: m.subject, Size: m.size, Direction: m.dir,
		OriginalClientIP: spammer.ip, FromIP: spammer.ip, Received: t0,
		ServerHostname: mxHost, ServerIP: mxIP, ClientHostname: spammer.host, ClientIP: spammer.ip,
	})
	score := 12 + g.rng.IntN(20)
	m.add(2*time.Second, mailflow.Event{
		Type: mailflow.EventFilterAsSpam, Recipient: rcpt, Source: "postfix/cleanup", DSN: "5.7.1",
		SMTPResponse:   "554 5.7.1 Spam message rejected",
		Detail:         fmt.Sprintf("milter-reject: END-OF-MESSAGE from %s[%s]: rspamd score %d.%d/15.0; rejected before queueing", spammer.host, spammer.ip, score, g.rng.IntN(10)),
		ClientHostname: spammer.host, ClientIP: spammer.ip,
	})
}

func (g *gen) inboundQuarantine(t0 time.Time) {
	p := pick(g.rng, []peer{vendor, spammer})
	m := g.newMsg(t0, pick(g.rng, p.addrs), "Invoice overdue - open attachment", mailflow.DirectionInbound, p.host, p.ip)
	m.receive()
	m.add(2*time.Second, mailflow.Event{
		Type: mailflow.EventQuarantine, Recipient: g.orgUser(), Source: "amavis",
		Detail: fmt.Sprintf("Blocked BANNED (.exe in invoice.zip): quarantined as banned-%s", strings.ToLower(m.id[:8])),
	})
}

func (g *gen) internal(t0 time.Time) {
	from := g.orgUser()
	to := g.orgUser()
	for to == from {
		to = g.orgUser()
	}
	host, ip := g.submitter()
	m := g.newMsg(t0, from, pick(g.rng, internalSubjects), mailflow.DirectionInternal, host, ip)
	m.receive()
	m.deliverLocal(time.Second, to, "")
}

// inboundMailboxFull: local delivery deferred because the mailbox is over
// quota, delivered once someone cleans up (if that has happened by now).
func (g *gen) inboundMailboxFull(t0 time.Time) {
	m := g.newMsg(t0, pick(g.rng, partner.addrs), "Re: Quote for Q3 renewal (large attachment)", mailflow.DirectionInbound, partner.host, partner.ip)
	m.receive()
	rcpt := "dave@" + OrgDomain
	for dt := 2 * time.Second; dt < 5*time.Hour; dt += 50 * time.Minute {
		m.add(dt, mailflow.Event{
			Type: mailflow.EventDefer, Recipient: rcpt, Source: "postfix/lmtp", DSN: "4.2.2",
			Relay:        fmt.Sprintf("%s[%s]:24", lmtpHost, lmtpIP),
			SMTPResponse: "452 4.2.2 <dave@example.com> Mailbox is full / Quota exceeded",
			Detail:       "deferred: the recipient's mailbox is over quota; will retry",
		})
	}
	m.deliverLocal(5*time.Hour+10*time.Minute, rcpt, "")
}

// fresh: received moments ago; nothing has happened to it yet.
func (g *gen) fresh(t0 time.Time) {
	m := g.newMsg(t0, pick(g.rng, news.addrs), "This week's product news", mailflow.DirectionInbound, news.host, news.ip)
	m.add(0, mailflow.Event{
		Type: mailflow.EventReceive, Source: "postfix/smtpd",
		Detail:    fmt.Sprintf("message received from %s[%s]", news.host, news.ip),
		MessageID: m.messageID, Sender: m.sender, Subject: m.subject, Size: m.size, Direction: m.dir,
		OriginalClientIP: news.ip, FromIP: news.ip, Received: t0,
		ServerHostname: mxHost, ServerIP: mxIP, ClientHostname: news.host, ClientIP: news.ip,
	})
}

// Messages counts the distinct messages in events.
func Messages(events []mailflow.Event) int {
	seen := map[string]struct{}{}
	for _, e := range events {
		seen[e.MessageTraceID] = struct{}{}
	}
	return len(seen)
}
