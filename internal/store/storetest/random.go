package storetest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The randomized case: a few thousand rows from a fixed seed, appended in
// shuffled batches (so events arrive out of order and across calls), then
// hundreds of random queries whose Trace (paged) and Count must agree with
// mailflow.Query.Match over the generated rows.

const (
	randomSeed     = 20260310
	randomMessages = 1300
	randomQueries  = 400
)

var (
	randLocals   = []string{"alice", "Bob", "carol.d", "x_y", "per%cent", `back\slash`, "田中", "Müller", "ops-team", "a"}
	randDomains  = []string{"example.com", "Mail.Example.com", "sub.mail.example.com", "contoso.com", "example.org", "例え.jp", "d07.example", "d7.example", "EXAMPLE.NET"}
	randSubjects = []string{"Quarterly report", "Re: Quarterly report", "Invoice 100% paid", "under_score", "ÄRGER im Büro", "ärger",
		"会議の件について 🎉", "Hello world", "", `back\slash subject`, "MIXED case Subject", "Fwd: Hello"}
	randDirections = []mailflow.Direction{mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal, ""}
)

type randGen struct {
	rng  *rand.Rand
	base time.Time
}

func (g *randGen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

func (g *randGen) mixCase(s string) string {
	switch g.rng.IntN(4) {
	case 0:
		return strings.ToUpper(s)
	case 1:
		r := []rune(s)
		for i := range r {
			if g.rng.IntN(2) == 0 {
				r[i] = []rune(strings.ToUpper(string(r[i])))[0]
			}
		}
		return string(r)
	}
	return s
}

func (g *randGen) addr() string { return g.mixCase(g.pick(randLocals) + "@" + g.pick(randDomains)) }

func (g *randGen) ip() string {
	switch g.rng.IntN(6) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("2001:db8:%x::%x", g.rng.IntN(4), 1+g.rng.IntN(5))
	case 2:
		return fmt.Sprintf("::ffff:10.0.%d.%d", g.rng.IntN(2), 1+g.rng.IntN(5))
	case 3:
		return fmt.Sprintf("192.0.2.%d", 1+g.rng.IntN(20))
	}
	return fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(4), g.rng.IntN(4), 1+g.rng.IntN(5))
}

// message generates one message's events and the rows they must produce.
func (g *randGen) message(i int, prevRecv time.Time) ([]mailflow.Event, []mailflow.Row) {
	mtid := fmt.Sprintf("r%05d", g.rng.IntN(100000)*10+i%10)
	mtid = fmt.Sprintf("%s-%d", mtid, i)
	recv := g.base.Add(time.Duration(g.rng.IntN(3*24*60)) * time.Minute)
	if !prevRecv.IsZero() && g.rng.IntN(10) == 0 {
		recv = prevRecv // ties on received time
	}
	sender := g.addr()
	if g.rng.IntN(30) == 0 {
		sender = ""
	}
	subject := g.pick(randSubjects)
	msgID := ""
	if g.rng.IntN(8) != 0 {
		msgID = fmt.Sprintf("<Mid-%d@Host.Example>", i)
	}
	size := int64(g.rng.IntN(100000))
	dir := randDirections[g.rng.IntN(len(randDirections))]
	ocip, fromIP := g.ip(), g.ip()

	rcv := mailflow.Event{ID: mtid + "-rcv", Time: recv, MessageTraceID: mtid, Type: mailflow.EventReceive,
		Sender: sender, Direction: dir, OriginalClientIP: ocip, FromIP: fromIP}
	received := recv
	if g.rng.IntN(5) == 0 {
		received = recv.Add(-5 * time.Second)
		rcv.Received = received
	}
	evs := []mailflow.Event{rcv}
	attrs := &evs[0]
	if g.rng.IntN(2) == 0 {
		evs = append(evs, mailflow.Event{ID: mtid + "-sub", Time: recv.Add(30 * time.Second), MessageTraceID: mtid, Type: mailflow.EventSubmit})
		attrs = &evs[1]
	}
	attrs.Subject, attrs.MessageID, attrs.Size = subject, msgID, size

	row := mailflow.Row{Received: received, Sender: mailflow.NormalizeAddress(sender), Subject: subject, MessageID: msgID,
		MessageTraceID: mtid, Size: size, OriginalClientIP: ocip, FromIP: fromIP, Direction: dir}
	var rows []mailflow.Row
	seen := map[string]bool{}
	nr := g.rng.IntN(5) // 0: placeholder only
	for range nr {
		a := g.addr()
		if seen[mailflow.NormalizeAddress(a)] {
			continue
		}
		seen[mailflow.NormalizeAddress(a)] = true
		revs, rrows := g.recipient(mtid, recv, a, "", row, seen)
		evs = append(evs, revs...)
		rows = append(rows, rrows...)
	}
	if len(rows) == 0 {
		r := row
		r.Status = mailflow.StatusGettingStatus
		rows = append(rows, r)
	}
	return evs, rows
}

func (g *randGen) recipient(mtid string, recv time.Time, a, group string, row mailflow.Row, seen map[string]bool) ([]mailflow.Event, []mailflow.Row) {
	id := func(s string) string { return mtid + "-" + mailflow.NormalizeAddress(a) + "-" + s }
	e := func(typ mailflow.EventType, d time.Duration) mailflow.Event {
		return mailflow.Event{ID: id(string(typ) + d.String()), Time: recv.Add(d), MessageTraceID: mtid, Recipient: a, Type: typ, ExpandedFrom: group}
	}
	row.Recipient = mailflow.NormalizeAddress(a)
	row.ExpandedFrom = mailflow.NormalizeAddress(group)
	row.ToIP, row.Status, row.StatusTime, row.Folder = "", "", time.Time{}, ""
	toIP := g.ip()
	var evs []mailflow.Event
	k := g.rng.IntN(100)
	if group != "" {
		k = g.rng.IntN(85) // members are not expanded again
	}
	switch {
	case k < 45:
		if g.rng.IntN(3) == 0 {
			evs = append(evs, e(mailflow.EventDefer, time.Minute))
		}
		d := e(mailflow.EventDeliver, 2*time.Minute)
		d.ToIP = toIP
		evs = append(evs, d)
		row.Status, row.StatusTime, row.ToIP = mailflow.StatusDelivered, recv.Add(2*time.Minute), toIP
		if g.rng.IntN(3) == 0 {
			// stored into a folder by the mailbox server (and, at times,
			// re-delivered into another one later)
			folders := []string{"INBOX", "Junk", "Archive/2026"}
			sv := e(mailflow.EventSave, 2*time.Minute)
			sv.Folder = folders[g.rng.IntN(len(folders))]
			evs = append(evs, sv)
			row.Folder = sv.Folder
			if g.rng.IntN(3) == 0 {
				sv2 := e(mailflow.EventSave, 5*time.Minute)
				sv2.Folder = folders[g.rng.IntN(len(folders))]
				evs = append(evs, sv2)
				row.Folder, row.StatusTime = sv2.Folder, recv.Add(5*time.Minute)
			}
		}
	case k < 60:
		evs = append(evs, e(mailflow.EventDefer, time.Minute))
		row.Status, row.StatusTime = mailflow.StatusPending, recv.Add(time.Minute)
		if g.rng.IntN(2) == 0 {
			evs = append(evs, e(mailflow.EventDefer, 3*time.Minute))
			row.StatusTime = recv.Add(3 * time.Minute)
		}
	case k < 68:
		evs = append(evs, e(mailflow.EventDefer, time.Minute), e(mailflow.EventFail, 4*time.Minute))
		row.Status, row.StatusTime = mailflow.StatusFailed, recv.Add(4*time.Minute)
	case k < 74:
		evs = append(evs, e(mailflow.EventQuarantine, time.Minute))
		row.Status, row.StatusTime = mailflow.StatusQuarantined, recv.Add(time.Minute)
	case k < 80:
		evs = append(evs, e(mailflow.EventFilterAsSpam, time.Minute))
		row.Status, row.StatusTime = mailflow.StatusFilteredAsSpam, recv.Add(time.Minute)
	case k < 85:
		evs = append(evs, e(mailflow.EventSend, time.Minute))
		row.Status = mailflow.StatusGettingStatus
	default:
		evs = append(evs, e(mailflow.EventExpand, time.Minute))
		row.Status, row.StatusTime = mailflow.StatusExpanded, recv.Add(time.Minute)
		rows := []mailflow.Row{row}
		for range 1 + g.rng.IntN(3) {
			m := g.addr()
			if seen[mailflow.NormalizeAddress(m)] {
				continue
			}
			seen[mailflow.NormalizeAddress(m)] = true
			mevs, mrows := g.recipient(mtid, recv, m, a, row, seen)
			evs = append(evs, mevs...)
			rows = append(rows, mrows...)
		}
		return evs, rows
	}
	return evs, []mailflow.Row{row}
}

func sortRows(rows []mailflow.Row) {
	slices.SortFunc(rows, mailflow.CompareRows)
}

func testRandomized(t *testing.T, f *fixture) {
	g := &randGen{rng: rand.New(rand.NewPCG(randomSeed, 1)), base: T0.Add(-36 * time.Hour)}
	var evs []mailflow.Event
	var rows []mailflow.Row
	var prev time.Time
	for i := range randomMessages {
		e, r := g.message(i, prev)
		prev = r[0].Received
		evs = append(evs, e...)
		rows = append(rows, r...)
	}
	g.rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for len(evs) > 0 {
		n := min(len(evs), 1+g.rng.IntN(900))
		f.append(evs[:n]...)
		evs = evs[n:]
	}
	sortRows(rows)
	t.Logf("%d rows", len(rows))

	// Everything first: every generated row, field by field.
	whole := mailflow.Query{Start: g.base.Add(-time.Hour), End: g.base.Add(4 * 24 * time.Hour)}
	got := f.all(whole)
	if len(got) != len(rows) {
		t.Fatalf("whole range: %d rows, want %d", len(got), len(rows))
	}
	bad := 0
	for i := range rows {
		if d := rowDiff(got[i], rows[i]); d != "" {
			if bad++; bad <= 10 {
				t.Errorf("row %d (%s %q): %s", i, rows[i].MessageTraceID, rows[i].Recipient, d)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d rows differ from the generated ones", bad)
	}

	failures, nonEmpty, multiPage := 0, 0, 0
	for n := range randomQueries {
		qq := g.query(rows)
		var want []mailflow.Row
		for _, r := range rows {
			if qq.Match(r) {
				want = append(want, r)
			}
		}
		size := []int{3, 50, 1000}[g.rng.IntN(3)]
		if len(want) <= 20 && g.rng.IntN(2) == 0 {
			size = 1
		}
		got, pages := f.paged(qq, size)
		if len(want) > 0 {
			nonEmpty++
		}
		if pages > 1 {
			multiPage++
		}
		if !slices.Equal(keys(got), keys(want)) {
			failures++
			if failures <= 10 {
				t.Errorf("query %d %s (page size %d): %d rows, want %d\n got  %.600q\n want %.600q",
					n, describe(qq), size, len(got), len(want), keys(got), keys(want))
			}
			continue
		}
		c, err := f.st.Count(f.ctx, qq)
		if err != nil {
			t.Fatalf("Count(%s): %v", describe(qq), err)
		}
		tally := map[mailflow.Status]int64{}
		for _, r := range want {
			tally[r.Status]++
		}
		ok := c.Total == int64(len(want))
		for _, s := range mailflow.AllStatuses {
			ok = ok && c.ByStatus[s] == tally[s]
		}
		if !ok {
			failures++
			if failures <= 10 {
				t.Errorf("query %d %s: Count %+v, want total %d, %v", n, describe(qq), c, len(want), tally)
			}
		}
	}
	t.Logf("%d random queries, %d with rows, %d over several pages", randomQueries, nonEmpty, multiPage)
	if failures > 0 {
		t.Errorf("%d of %d random queries disagree with mailflow.Query.Match", failures, randomQueries)
	}
}

// query makes a random query, most filters derived from an existing row so
// that results are rarely empty.
func (g *randGen) query(rows []mailflow.Row) mailflow.Query {
	r := rows[g.rng.IntN(len(rows))]
	q := mailflow.Query{Start: g.base.Add(-time.Hour), End: g.base.Add(4 * 24 * time.Hour)}
	if g.rng.IntN(3) != 0 {
		q.Start = g.base.Add(time.Duration(g.rng.IntN(3*24*60)) * time.Minute)
		if g.rng.IntN(3) == 0 {
			q.Start = r.Received // inclusive bound on a real row
		}
		q.End = q.Start.Add(time.Duration(1+g.rng.IntN(24*60)) * time.Minute)
	}
	chance := func() bool { return g.rng.IntN(4) == 0 }
	if chance() {
		for range 1 + g.rng.IntN(3) {
			q.Senders = append(q.Senders, g.pattern(rows[g.rng.IntN(len(rows))].Sender))
		}
	}
	if chance() {
		for range 1 + g.rng.IntN(3) {
			q.Recipients = append(q.Recipients, g.pattern(rows[g.rng.IntN(len(rows))].Recipient))
		}
	}
	if chance() {
		q.Scope = []string{}
		for range g.rng.IntN(3) {
			a := rows[g.rng.IntN(len(rows))]
			q.Scope = append(q.Scope, g.pattern(g.pick([]string{a.Sender, a.Recipient})))
		}
	}
	if chance() {
		for range 1 + g.rng.IntN(3) {
			q.Statuses = append(q.Statuses, mailflow.AllStatuses[g.rng.IntN(len(mailflow.AllStatuses))])
		}
	}
	if g.rng.IntN(12) == 0 && r.MessageID != "" {
		id := r.MessageID
		switch g.rng.IntN(3) {
		case 0:
			id = mailflow.NormalizeMessageID(id)
		case 1:
			id = strings.ToUpper(id)
		}
		q.MessageID = id
	}
	if g.rng.IntN(15) == 0 {
		q.MessageTraceID = r.MessageTraceID
	}
	if chance() {
		q.Direction = append(randDirections[:3:3], mailflow.DirectionAll)[g.rng.IntN(4)]
	}
	ipf := func(ip string) netip.Prefix {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			a = netip.MustParseAddr("10.0.0.1")
		}
		a = a.Unmap()
		bits := []int{8, 16, 24, 32}[g.rng.IntN(4)]
		if a.Is6() {
			bits = []int{32, 48, 64, 128}[g.rng.IntN(4)]
		}
		p, _ := a.Prefix(bits)
		return p
	}
	if g.rng.IntN(8) == 0 {
		q.OriginalClientIP = ipf(r.OriginalClientIP)
	}
	if g.rng.IntN(8) == 0 {
		q.FromIP = ipf(r.FromIP)
	}
	if g.rng.IntN(8) == 0 {
		q.ToIP = ipf(r.ToIP)
	}
	if chance() && r.Subject != "" {
		s := []rune(r.Subject)
		i := g.rng.IntN(len(s))
		j := i + 1 + g.rng.IntN(len(s)-i)
		q.Subject = g.mixCase(string(s[i:j]))
		q.SubjectMatch = []mailflow.SubjectMatch{"", mailflow.SubjectContains, mailflow.SubjectStartsWith, mailflow.SubjectEndsWith}[g.rng.IntN(4)]
	}
	return q
}

// pattern derives a random `*` pattern from an address.
func (g *randGen) pattern(addr string) string {
	if addr == "" {
		return "*"
	}
	local, domain, _ := strings.Cut(addr, "@")
	var p string
	switch g.rng.IntN(8) {
	case 0:
		p = addr
	case 1:
		p = "*@" + domain
	case 2:
		p = local + "@*"
	case 3:
		if i := strings.IndexByte(domain, '.'); i >= 0 {
			p = "*@*" + domain[i:]
		} else {
			p = "*@*"
		}
	case 4:
		r := []rune(addr)
		i := g.rng.IntN(len(r))
		j := i + g.rng.IntN(len(r)-i)
		p = string(r[:i]) + "*" + string(r[j:])
	case 5:
		r := []rune(addr)
		i := g.rng.IntN(len(r))
		j := i + 1 + g.rng.IntN(len(r)-i)
		p = "*" + string(r[i:j]) + "*"
	case 6:
		p = "*"
	default:
		p = "*@" + g.pick(randDomains)
	}
	return g.mixCase(p)
}
