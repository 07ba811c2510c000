package demo

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// LogDays is how far back the demo's Postfix log goes: the store's default
// retention, so that a 30-day report and the 7-day default queries all
// have something to find.
const LogDays = 90

// AcceptedDomains are the organisation's domains in the demo log (the
// ingester's --ingest-accepted-domain): they decide the direction.
var AcceptedDomains = []string{OrgDomain, "example.org"}

// logLine is one line of the generated log with its time, for sorting.
type logLine struct {
	t    time.Time
	seq  int
	text string
}

// logGen builds the lines of one run; every random choice comes from rng.
type logGen struct {
	rng   *rand.Rand
	now   time.Time
	seq   int
	qn    int
	pid   int
	lines []logLine
}

// GenerateLog returns the demo's mail log: LogDays days of a small
// organisation's Postfix (mx1.example.com, with amavis as content filter)
// ending at now, one syslog line (RFC 3339 timestamp) per string, oldest
// first. It holds what an admin meets in a real log: inbound, outbound
// (SASL-authenticated submission) and internal mail, a distribution group
// expanded to its members (orig_to), deferrals then deliveries, bounces
// with 5.1.1, NOQUEUE rejects of spam sources, a milter-hold quarantine,
// amavis hops, subjects from header_checks WARN lines (one in Japanese).
// It is deterministic: the same now gives the same lines.
func GenerateLog(now time.Time) []string {
	now = now.UTC().Truncate(time.Second)
	g := &logGen{rng: rand.New(rand.NewPCG(uint64(now.Unix()/86400), 42)), now: now, pid: 2000}
	start := now.Add(-LogDays * 24 * time.Hour)
	for day := 0; day < LogDays; day++ {
		d0 := start.Add(time.Duration(day) * 24 * time.Hour)
		n := 14 + g.rng.IntN(8)
		for i := 0; i < n; i++ {
			t0 := d0.Add(time.Duration(g.rng.IntN(24*3600-1800)) * time.Second)
			if t0.After(now.Add(-2 * time.Hour)) {
				continue
			}
			switch k := g.rng.IntN(100); {
			case k < 22:
				g.outbound(t0, false)
			case k < 28:
				g.outbound(t0, true) // deferred, then delivered
			case k < 34:
				g.bounce(t0)
			case k < 58:
				g.inbound(t0, g.rng.IntN(8) == 0)
			case k < 66:
				g.toGroup(t0)
			case k < 78:
				g.internal(t0)
			case k < 90:
				g.noqueueSpam(t0)
			case k < 94:
				g.milterHold(t0)
			default:
				g.amavisSpam(t0)
			}
		}
	}
	// the last hours: a message still being retried, and one just received
	g.stillDeferred(now.Add(-90 * time.Minute))
	g.inbound(now.Add(-40*time.Minute), true)
	g.bounce(now.Add(-30 * time.Minute))

	sort.SliceStable(g.lines, func(i, j int) bool {
		if !g.lines[i].t.Equal(g.lines[j].t) {
			return g.lines[i].t.Before(g.lines[j].t)
		}
		return g.lines[i].seq < g.lines[j].seq
	})
	out := make([]string, 0, len(g.lines))
	for _, l := range g.lines {
		if l.t.After(now) {
			continue
		}
		out = append(out, l.text)
	}
	return out
}

func (g *logGen) queueID() string {
	g.qn++
	const hex = "0123456789ABCDEF"
	var b [10]byte
	v := uint64(g.qn)*2654435761 + uint64(g.rng.IntN(1<<20))<<32
	for i := range b {
		b[i] = hex[v%16]
		v /= 16
	}
	return string(b[:])
}

// emit adds a line of program prog (e.g. "postfix/smtpd") at t.
func (g *logGen) emit(t time.Time, prog, text string) {
	g.seq++
	g.pid++
	line := fmt.Sprintf("%s %s %s[%d]: %s", t.Format("2006-01-02T15:04:05.000000+00:00"), mxHost, prog, 1000+g.pid%30000, text)
	g.lines = append(g.lines, logLine{t: t, seq: g.seq, text: line})
}

func (g *logGen) msgID(t time.Time, domain string) string {
	return fmt.Sprintf("<%d.%d@%s>", t.Unix(), g.seq+g.qn, domain)
}

func (g *logGen) size() int { return 2000 + g.rng.IntN(180000) }

// received logs a message entering the queue: the client, its Message-ID,
// the subject (a header_checks WARN rule logs it) and the qmgr line.
func (g *logGen) received(t time.Time, q, client, sasl, from, to, subject, mid string, size, nrcpt int) time.Time {
	c := "client=" + client
	if sasl != "" {
		c += ", sasl_method=PLAIN, sasl_username=" + sasl
	}
	g.emit(t, "postfix/smtpd", q+": "+c)
	t = t.Add(200 * time.Millisecond)
	g.emit(t, "postfix/cleanup", q+": message-id="+mid)
	g.emit(t, "postfix/cleanup", fmt.Sprintf("%s: warning: header Subject: %s from %s; from=<%s> to=<%s> proto=ESMTP helo=<%s>",
		q, subject, client, from, to, strings.SplitN(client, "[", 2)[0]))
	t = t.Add(300 * time.Millisecond)
	g.emit(t, "postfix/qmgr", fmt.Sprintf("%s: from=<%s>, size=%d, nrcpt=%d (queue active)", q, from, size, nrcpt))
	return t
}

func (g *logGen) removed(t time.Time, q string) { g.emit(t, "postfix/qmgr", q+": removed") }

func (g *logGen) orgUser() string { return pick(g.rng, orgUsers) + "@" + OrgDomain }

func (g *logGen) submitClient() string {
	return fmt.Sprintf("pc%d.office.example.com[10.0.1.%d]", 10+g.rng.IntN(40), 10+g.rng.IntN(200))
}

func peerAddr(p peer) string { return fmt.Sprintf("%s[%s]", p.host, p.ip) }

func (g *logGen) outbound(t0 time.Time, deferFirst bool) {
	q, from, p := g.queueID(), g.orgUser(), pick(g.rng, outside)
	to := pick(g.rng, p.addrs)
	t := g.received(t0, q, g.submitClient(), from, from, to, pick(g.rng, outboundSubjects), g.msgID(t0, OrgDomain), g.size(), 1)
	relay := fmt.Sprintf("%s:25", peerAddr(p))
	if deferFirst {
		t = t.Add(30 * time.Second)
		g.emit(t, "postfix/smtp", fmt.Sprintf("%s: to=<%s>, relay=%s, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to %s: Connection timed out)", q, to, relay, relay))
		t = t.Add(time.Duration(10+g.rng.IntN(50)) * time.Minute)
	} else {
		t = t.Add(time.Duration(1+g.rng.IntN(3)) * time.Second)
	}
	g.emit(t, "postfix/smtp", fmt.Sprintf("%s: to=<%s>, relay=%s, delay=1.2, delays=0.1/0/0.4/0.7, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %s)", q, to, relay, g.queueID()))
	g.removed(t, q)
}

// stillDeferred: the mailbox server keeps answering "mailbox full", so an
// inbound message is still in the queue, retried (Pending).
func (g *logGen) stillDeferred(t0 time.Time) {
	q, p, to := g.queueID(), vendor, "carol@"+OrgDomain
	from := p.addrs[1]
	t := g.received(t0, q, peerAddr(p), "", from, to, "Invoice 2026-11 overdue", g.msgID(t0, "vendor.example"), g.size(), 1)
	for i := 0; i < 4; i++ {
		t = t.Add(time.Duration(5+10*i) * time.Minute)
		g.emit(t, "postfix/lmtp", fmt.Sprintf("%s: to=<%s>, relay=%s[%s]:24, delay=%d, delays=0.1/0/0.1/0.2, dsn=4.2.2, status=deferred (host %s[%s] said: 452 4.2.2 <%s> Mailbox is full (in reply to end of DATA command))",
			q, to, lmtpHost, lmtpIP, int(t.Sub(t0).Seconds()), lmtpHost, lmtpIP, to))
	}
}

func (g *logGen) bounce(t0 time.Time) {
	q, from, p := g.queueID(), g.orgUser(), partner
	to := pick(g.rng, []string{"k.tanaka@partner.example", "orders-old@partner.example", "sales-jp@partner.example"})
	t := g.received(t0, q, g.submitClient(), from, from, to, pick(g.rng, outboundSubjects), g.msgID(t0, OrgDomain), g.size(), 1)
	t = t.Add(2 * time.Second)
	g.emit(t, "postfix/smtp", fmt.Sprintf("%s: to=<%s>, relay=%s:25, delay=2, delays=0.1/0/0.9/1, dsn=5.1.1, status=bounced (host %s said: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))",
		q, to, peerAddr(p), peerAddr(p), to))
	ndr := g.queueID()
	g.emit(t, "postfix/bounce", fmt.Sprintf("%s: sender non-delivery notification: %s", q, ndr))
	g.removed(t, q)
	// the non-delivery report goes back to the sender's mailbox
	g.emit(t, "postfix/cleanup", ndr+": message-id="+g.msgID(t, mxHost))
	g.emit(t, "postfix/qmgr", fmt.Sprintf("%s: from=<>, size=%d, nrcpt=1 (queue active)", ndr, 3000+g.rng.IntN(4000)))
	t = t.Add(400 * time.Millisecond)
	g.emit(t, "postfix/lmtp", fmt.Sprintf("%s: to=<%s>, relay=%s[%s]:24, delay=0.4, delays=0/0/0.1/0.3, dsn=2.0.0, status=sent (250 2.0.0 <%s> Saved)", ndr, from, lmtpHost, lmtpIP, from))
	g.removed(t, ndr)
}

// inbound: from a partner through amavis (content filter on
// 127.0.0.1:10024, reinjected on :10025) to the mailbox server over LMTP.
func (g *logGen) inbound(t0 time.Time, japanese bool) {
	g.inboundTo(t0, g.orgUser(), "", japanese)
}

func (g *logGen) inboundTo(t0 time.Time, rcpt string, group string, japanese bool) {
	p := pick(g.rng, []peer{partner, vendor, news})
	from := pick(g.rng, p.addrs)
	subject := pick(g.rng, inboundSubjects)
	if japanese {
		subject = "【ご案内】来週の定例会議について"
	}
	members := []string{rcpt}
	to := rcpt
	if group != "" {
		members, to = groups[group], group
	}
	q, size, mid := g.queueID(), g.size(), g.msgID(t0, strings.SplitN(from, "@", 2)[1])
	t := g.received(t0, q, peerAddr(p), "", from, to, subject, mid, size, 1)
	// hand-over to amavis, which reinjects as q2
	q2 := g.queueID()
	t2 := t.Add(time.Duration(800+g.rng.IntN(2000)) * time.Millisecond)
	g.emit(t2, "postfix/smtpd", q2+": client=localhost[127.0.0.1], orig_client="+peerAddr(p))
	g.emit(t2, "postfix/cleanup", q2+": message-id="+mid)
	g.emit(t2, "postfix/qmgr", fmt.Sprintf("%s: from=<%s>, size=%d, nrcpt=%d (queue active)", q2, from, size+900, len(members)))
	g.emit(t2, "postfix/smtp", fmt.Sprintf("%s: to=<%s>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.1, delays=0.1/0/0/2, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as %s)", q, to, q2))
	g.removed(t2, q)
	t3 := t2.Add(300 * time.Millisecond)
	for _, m := range members {
		orig := ""
		if group != "" {
			orig = ", orig_to=<" + group + ">"
		}
		g.emit(t3, "postfix/lmtp", fmt.Sprintf("%s: to=<%s>%s, relay=%s[%s]:24, delay=2.5, delays=2.1/0/0.1/0.3, dsn=2.0.0, status=sent (250 2.0.0 <%s> Saved)", q2, m, orig, lmtpHost, lmtpIP, m))
	}
	g.removed(t3, q2)
}

func (g *logGen) toGroup(t0 time.Time) {
	g.inboundTo(t0, "", pick(g.rng, groupNames), false)
}

func (g *logGen) internal(t0 time.Time) {
	q, from := g.queueID(), g.orgUser()
	to := g.orgUser()
	t := g.received(t0, q, g.submitClient(), from, from, to, pick(g.rng, internalSubjects), g.msgID(t0, OrgDomain), g.size(), 1)
	t = t.Add(time.Second)
	g.emit(t, "postfix/lmtp", fmt.Sprintf("%s: to=<%s>, relay=%s[%s]:24, delay=0.6, delays=0.1/0/0.1/0.4, dsn=2.0.0, status=sent (250 2.0.0 <%s> Saved)", q, to, lmtpHost, lmtpIP, to))
	g.removed(t, q)
}

// noqueueSpam: a known spam source rejected at RCPT, before any queue file.
func (g *logGen) noqueueSpam(t0 time.Time) {
	from, to := pick(g.rng, spammer.addrs), g.orgUser()
	g.emit(t0, "postfix/smtpd", fmt.Sprintf("NOQUEUE: reject: RCPT from %s: 554 5.7.1 Service unavailable; Client host [%s] blocked using zen.spamhaus.org; from=<%s> to=<%s> proto=ESMTP helo=<%s>",
		peerAddr(spammer), spammer.ip, from, to, spammer.host))
}

// milterHold: the spam milter puts a suspicious message on hold (quarantine).
func (g *logGen) milterHold(t0 time.Time) {
	q, from, to := g.queueID(), pick(g.rng, spammer.addrs), g.orgUser()
	g.emit(t0, "postfix/smtpd", q+": client="+peerAddr(spammer))
	t := t0.Add(400 * time.Millisecond)
	g.emit(t, "postfix/cleanup", q+": message-id="+g.msgID(t0, "bulk-mail.example"))
	g.emit(t, "postfix/cleanup", fmt.Sprintf("%s: warning: header Subject: %s from %s; from=<%s> to=<%s> proto=ESMTP helo=<%s>", q, pick(g.rng, spamSubjects), peerAddr(spammer), from, to, spammer.host))
	g.emit(t, "postfix/cleanup", fmt.Sprintf("%s: milter-hold: END-OF-MESSAGE from %s: milter triggers HOLD action; from=<%s> to=<%s> proto=ESMTP helo=<%s>", q, peerAddr(spammer), from, to, spammer.host))
}

// amavisSpam: accepted, then discarded by amavis as spam.
func (g *logGen) amavisSpam(t0 time.Time) {
	q, from, to := g.queueID(), pick(g.rng, spammer.addrs), g.orgUser()
	mid := g.msgID(t0, "lottery.example")
	subject := pick(g.rng, spamSubjects)
	t := g.received(t0, q, peerAddr(spammer), "", from, to, subject, mid, g.size(), 1)
	t = t.Add(1500 * time.Millisecond)
	g.emit(t, "amavis", fmt.Sprintf("(%05d-01) Blocked SPAM {DiscardedInbound}, [%s]:41234 <%s> -> <%s>, Queue-ID: %s, Message-ID: %s, Hits: 18.2, size: 4211, Subject: \"%s\", 1450 ms",
		g.qn, spammer.ip, from, to, q, mid, subject))
	g.emit(t, "postfix/smtp", fmt.Sprintf("%s: to=<%s>, relay=127.0.0.1[127.0.0.1]:10024, delay=1.9, delays=0.1/0/0/1.8, dsn=2.7.0, status=sent (250 2.7.0 Ok, discarded, id=%05d-01 - spam)", q, to, g.qn))
	g.removed(t, q)
}
