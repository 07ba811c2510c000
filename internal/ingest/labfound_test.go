package ingest

import (
	"bufio"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// What the mail lab (test/maillab) and a probe of real logs found (issue
// 16 item 4), each reproduced with the real lines: the lab's Postfix 3.7
// (its maillog, kept with MAILTRACE_MAILLAB_KEEP=1) and the shared real
// logs (../shared/maildata, read in place).

var labCfg = Config{AcceptedDomains: []string{"lab.test"}, Reference: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}

// wantRow is a row a case expects: its status, the group it came from,
// the event types that must be in its timeline in this order, and the
// direction of its last event (when set).
type wantRow struct {
	status       mailflow.Status
	expandedFrom string
	events       []mailflow.EventType
	direction    mailflow.Direction
}

// checkRows compares the rows of one trace with want (every row, no more).
func checkRows(t *testing.T, s *memStore, traceID string, want map[string]wantRow) {
	t.Helper()
	rows := s.rows(traceID)
	var got []string
	for _, r := range rows {
		got = append(got, r.Recipient)
		w, ok := want[r.Recipient]
		if !ok {
			t.Errorf("unexpected row %s %s (via %q)\n%s", r.Recipient, r.Status, r.ExpandedFrom, dumpEvents(r.Events))
			continue
		}
		if r.Status != w.status || r.ExpandedFrom != w.expandedFrom {
			t.Errorf("%s: %s via %q, want %s via %q\n%s", r.Recipient, r.Status, r.ExpandedFrom, w.status, w.expandedFrom, dumpEvents(r.Events))
		}
		slices.SortStableFunc(r.Events, func(a, b mailflow.Event) int { return a.Time.Compare(b.Time) })
		types := []mailflow.EventType{}
		for _, e := range r.Events {
			types = append(types, e.Type)
		}
		if !subsequence(types, w.events) {
			t.Errorf("%s: events %v, want %v in this order", r.Recipient, types, w.events)
		}
		if w.direction != "" {
			all := s.traces[traceID]
			if d := all[len(all)-1].Direction; d != w.direction {
				t.Errorf("%s: direction %q, want %s", r.Recipient, d, w.direction)
			}
		}
	}
	for rc := range want {
		if !slices.Contains(got, rc) {
			t.Errorf("no row for %s (rows %v)", rc, got)
		}
	}
}

func subsequence(got, want []mailflow.EventType) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestLabFound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qid   string
		lines []string
		want  map[string]wantRow
	}{
		{
			// the lab's spoofed-internal-sender: from an outside IP,
			// without SASL, an organisation sender: Inbound, not Internal
			name: "spoofed organisation sender", qid: "B453A98F54A",
			lines: []string{
				"Dec 06 03:36:54 mx postfix/smtpd[13056]: B453A98F54A: client=mail.remote.test[203.0.113.25]",
				"Dec 06 03:36:54 mx postfix/cleanup[13079]: B453A98F54A: info: header Subject: Urgent wire transfer from mail.remote.test[203.0.113.25]; from=<ceo@lab.test> to=<ivan@lab.test> proto=ESMTP helo=<mail.remote.test>",
				"Dec 06 03:36:54 mx postfix/cleanup[13079]: B453A98F54A: message-id=<maillab-msg-fed11e7990e9@lab.test>",
				"Dec 06 03:36:55 mx postfix/qmgr[13046]: B453A98F54A: from=<ceo@lab.test>, size=498, nrcpt=1 (queue active)",
				"Dec 06 03:36:56 mx postfix/lmtp[13188]: B453A98F54A: to=<ivan@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=1.4, delays=0.54/0.31/0.2/0.32, dsn=2.0.0, status=sent (250 2.0.0 <ivan@lab.test> 3UlbLVfYFGuvMwAAg+zDdQ Saved)",
				"Dec 06 03:36:56 mx postfix/qmgr[13046]: B453A98F54A: removed",
			},
			want: map[string]wantRow{"ivan@lab.test": {status: mailflow.StatusDelivered, events: []mailflow.EventType{mailflow.EventDeliver}, direction: mailflow.DirectionInbound}},
		},
		{
			// the lab's single-alias: alias@ -> dave@ only: one row,
			// the original recipient's, Resolved, then Delivered
			name: "single-address alias", qid: "C7EE598F11A",
			lines: []string{
				"Dec 06 03:36:55 mx postfix/smtpd[13205]: C7EE598F11A: client=mail.remote.test[203.0.113.25]",
				"Dec 06 03:36:55 mx postfix/cleanup[13199]: C7EE598F11A: info: header Subject: To the alias from mail.remote.test[203.0.113.25]; from=<sender@remote.test> to=<alias@lab.test> proto=ESMTP helo=<mail.remote.test>",
				"Dec 06 03:36:55 mx postfix/cleanup[13199]: C7EE598F11A: message-id=<maillab-msg-ad7d68885130@lab.test>",
				"Dec 06 03:36:56 mx postfix/qmgr[13046]: C7EE598F11A: from=<sender@remote.test>, size=498, nrcpt=1 (queue active)",
				"Dec 06 03:36:56 mx postfix/lmtp[13188]: C7EE598F11A: to=<dave@lab.test>, orig_to=<alias@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.54, delays=0.52/0/0/0.02, dsn=2.0.0, status=sent (250 2.0.0 <dave@lab.test> 6KXwEljYFGuzMwAAg+zDdQ Saved)",
				"Dec 06 03:36:56 mx postfix/qmgr[13046]: C7EE598F11A: removed",
			},
			want: map[string]wantRow{"alias@lab.test": {status: mailflow.StatusDelivered, events: []mailflow.EventType{mailflow.EventResolve, mailflow.EventDeliver}, direction: mailflow.DirectionInbound}},
		},
		{
			// the lab's header-checks-redirect: the original recipient's
			// row shows the Redirect and the status of where it went
			name: "header_checks REDIRECT", qid: "C687A98F115",
			lines: []string{
				"Dec 06 03:36:55 mx postfix/smtpd[13222]: C687A98F115: client=mail.remote.test[203.0.113.25]",
				"Dec 06 03:36:55 mx postfix/cleanup[13209]: C687A98F115: redirect: header Subject: [lab-redirect] for the desk from mail.remote.test[203.0.113.25]; from=<sender@remote.test> to=<u51@lab.test> proto=ESMTP helo=<mail.remote.test>: dave@lab.test",
				"Dec 06 03:36:55 mx postfix/cleanup[13209]: C687A98F115: message-id=<maillab-msg-ac4566878bee@lab.test>",
				"Dec 06 03:36:55 mx postfix/qmgr[13046]: C687A98F115: from=<sender@remote.test>, size=509, nrcpt=1 (queue active)",
				"Dec 06 03:36:56 mx postfix/lmtp[13240]: C687A98F115: to=<dave@lab.test>, orig_to=<u51@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.41, delays=0.08/0.08/0.03/0.22, dsn=2.0.0, status=sent (250 2.0.0 <dave@lab.test> IOvmOlfYFGu5MwAAg+zDdQ Saved)",
				"Dec 06 03:36:56 mx postfix/qmgr[13046]: C687A98F115: removed",
			},
			want: map[string]wantRow{"u51@lab.test": {status: mailflow.StatusDelivered, events: []mailflow.EventType{mailflow.EventRedirect, mailflow.EventDeliver}}},
		},
		{
			// the lab's distribution-group-listed-first: a group of
			// three stays a group, one Expand
			name: "group of three", qid: "4CBA598F0B0",
			lines: []string{
				"Dec 06 03:36:55 mx postfix/smtpd[13049]: 4CBA598F0B0: client=mail.remote.test[203.0.113.25]",
				"Dec 06 03:36:55 mx postfix/cleanup[13198]: 4CBA598F0B0: message-id=<maillab-msg-48c3b3197200@lab.test>",
				"Dec 06 03:36:55 mx postfix/qmgr[13046]: 4CBA598F0B0: from=<sender@remote.test>, size=495, nrcpt=3 (queue active)",
				"Dec 06 03:36:56 mx postfix/lmtp[13228]: 4CBA598F0B0: to=<grace@lab.test>, orig_to=<team@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.94, delays=0.64/0.08/0.08/0.13, dsn=2.0.0, status=sent (250 2.0.0 <grace@lab.test> 0GmiBVjYFGupMwAAg+zDdQ Saved)",
				"Dec 06 03:36:56 mx postfix/lmtp[13228]: 4CBA598F0B0: to=<heidi@lab.test>, orig_to=<team@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.94, delays=0.64/0.08/0.08/0.13, dsn=2.0.0, status=sent (250 2.0.0 <heidi@lab.test> 0GmiBVjYFGupMwAAg+zDdQ:R2 Saved)",
				"Dec 06 03:36:56 mx postfix/lmtp[13228]: 4CBA598F0B0: to=<ivan@lab.test>, orig_to=<team@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.94, delays=0.64/0.08/0.08/0.13, dsn=2.0.0, status=sent (250 2.0.0 <ivan@lab.test> 0GmiBVjYFGupMwAAg+zDdQ:R3 Saved)",
				"Dec 06 03:36:56 mx postfix/qmgr[13046]: 4CBA598F0B0: removed",
			},
			want: map[string]wantRow{
				"team@lab.test":  {status: mailflow.StatusExpanded, events: []mailflow.EventType{mailflow.EventExpand}},
				"grace@lab.test": {status: mailflow.StatusDelivered, expandedFrom: "team@lab.test", events: []mailflow.EventType{mailflow.EventDeliver}},
				"heidi@lab.test": {status: mailflow.StatusDelivered, expandedFrom: "team@lab.test", events: []mailflow.EventType{mailflow.EventDeliver}},
				"ivan@lab.test":  {status: mailflow.StatusDelivered, expandedFrom: "team@lab.test", events: []mailflow.EventType{mailflow.EventDeliver}},
			},
		},
		{
			// an alias that keeps its own copy (keep@ -> keep@, dave@):
			// its row is its own copy's, deferred; dave@'s row names it
			name: "alias keeping its own copy", qid: "5D1E398F0C1",
			lines: []string{
				"Dec 06 03:40:01 mx postfix/smtpd[13049]: 5D1E398F0C1: client=mail.remote.test[203.0.113.25]",
				"Dec 06 03:40:01 mx postfix/cleanup[13198]: 5D1E398F0C1: message-id=<maillab-msg-0c5e1d9a0b11@lab.test>",
				"Dec 06 03:40:01 mx postfix/qmgr[13046]: 5D1E398F0C1: from=<sender@remote.test>, size=495, nrcpt=2 (queue active)",
				"Dec 06 03:40:02 mx postfix/lmtp[13228]: 5D1E398F0C1: to=<dave@lab.test>, orig_to=<keep@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.94, delays=0.64/0.08/0.08/0.13, dsn=2.0.0, status=sent (250 2.0.0 <dave@lab.test> 0GmiBVjYFGupMwAAg+zDdQ Saved)",
				"Dec 06 03:40:02 mx postfix/lmtp[13228]: 5D1E398F0C1: to=<keep@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.94, delays=0.64/0.08/0.08/0.13, dsn=4.2.2, status=deferred (host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <keep@lab.test> Quota exceeded (mailbox for user is full) (in reply to end of DATA command))",
			},
			want: map[string]wantRow{
				"keep@lab.test": {status: mailflow.StatusPending, events: []mailflow.EventType{mailflow.EventDefer}},
				"dave@lab.test": {status: mailflow.StatusDelivered, expandedFrom: "keep@lab.test", events: []mailflow.EventType{mailflow.EventDeliver}},
			},
		},
		{
			// the lab's loopback-client: a program on the server, through
			// smtpd on 127.0.0.1 without SASL: Internal
			name: "loopback client", qid: "4171B98F0AB",
			lines: []string{
				"Dec 06 03:36:55 mx postfix/smtpd[13205]: 4171B98F0AB: client=localhost[127.0.0.1]",
				"Dec 06 03:36:55 mx postfix/cleanup[13207]: 4171B98F0AB: info: header Subject: Nightly report from localhost[127.0.0.1]; from=<app@lab.test> to=<walter@lab.test> proto=ESMTP helo=<client.remote.test>",
				"Dec 06 03:36:55 mx postfix/cleanup[13207]: 4171B98F0AB: message-id=<maillab-msg-74bd1088ce7e@lab.test>",
				"Dec 06 03:36:55 mx postfix/qmgr[13046]: 4171B98F0AB: from=<app@lab.test>, size=488, nrcpt=1 (queue active)",
				"Dec 06 03:36:56 mx postfix/lmtp[13224]: 4171B98F0AB: to=<walter@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.98, delays=0.52/0.16/0.01/0.28, dsn=2.0.0, status=sent (250 2.0.0 <walter@lab.test> WFIJOFfYFGtdMgAAg+zDdQ Saved)",
				"Dec 06 03:36:56 mx postfix/qmgr[13046]: 4171B98F0AB: removed",
			},
			want: map[string]wantRow{"walter@lab.test": {status: mailflow.StatusDelivered, events: []mailflow.EventType{mailflow.EventDeliver}, direction: mailflow.DirectionInternal}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := run(t, labCfg, tc.lines...)
			id := c.TraceID("mx", tc.qid)
			if id == "" || len(s.traces) != 1 {
				t.Fatalf("trace %q, %d traces", id, len(s.traces))
			}
			checkRows(t, s, id, tc.want)
		})
	}
}

// A message still in the active queue (the lab's outbound to a remote MX
// that holds the connection: its qmgr line and no delivery line) ages into
// Pending after PendingAfter of log time, not GettingStatus for ever; and
// so does one whose session was lost after DATA (no qmgr line at all).
func TestLabFoundPendingAfter(t *testing.T) {
	for _, tc := range []struct {
		name, qid string
		lines     []string
	}{
		{"in the active queue", "9A1B298F0D2", []string{
			"Dec 06 03:36:54 mx postfix/smtpd[13056]: 9A1B298F0D2: client=unknown[198.51.100.7], sasl_method=PLAIN, sasl_username=u60@lab.test",
			"Dec 06 03:36:54 mx postfix/cleanup[13079]: 9A1B298F0D2: message-id=<maillab-msg-2f1e5c0a9d33@lab.test>",
			"Dec 06 03:36:55 mx postfix/qmgr[13046]: 9A1B298F0D2: from=<u60@lab.test>, size=498, nrcpt=1 (queue active)",
		}},
		{"session lost after DATA", "7C3D498F0E4", []string{
			"Dec 06 03:36:54 mx postfix/smtpd[13056]: 7C3D498F0E4: client=mail.remote.test[203.0.113.25]",
			"Dec 06 03:36:54 mx postfix/cleanup[13079]: 7C3D498F0E4: message-id=<maillab-msg-7a0c2b1d4e55@lab.test>",
			"Dec 06 03:37:54 mx postfix/smtpd[13056]: lost connection after DATA (0 bytes) from mail.remote.test[203.0.113.25]",
			"Dec 06 03:37:54 mx postfix/smtpd[13056]: disconnect from mail.remote.test[203.0.113.25] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := labCfg
			cfg.PendingAfter = 30 * time.Minute
			s := newMemStore()
			c := NewCorrelator(cfg, s.Append)
			for _, l := range tc.lines {
				if err := c.Feed(l); err != nil {
					t.Fatal(err)
				}
			}
			id := c.TraceID("mx", tc.qid)
			status := func() mailflow.Status {
				rows := s.rows(id)
				if len(rows) != 1 || rows[0].Recipient != "" {
					t.Fatalf("rows %+v, want the placeholder", rows)
				}
				return rows[0].Status
			}
			if id == "" || status() != mailflow.StatusGettingStatus {
				t.Fatalf("trace %q, before the window: want GettingStatus", id)
			}
			if err := c.Advance(time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			if st := status(); st != mailflow.StatusGettingStatus {
				t.Errorf("23 minutes on: %s, want GettingStatus still", st)
			}
			if err := c.Advance(time.Date(2026, 12, 6, 4, 7, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			if st := status(); st != mailflow.StatusPending {
				t.Errorf("30 minutes on: %s, want Pending", st)
			}
			// once: another sweep adds nothing
			n := len(s.order)
			if err := c.Advance(time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			if len(s.order) != n {
				t.Errorf("aged again: %d events, then %d", n, len(s.order))
			}
		})
	}
}

// The lab's loopback-client: a program on the mail server hands its mail
// to smtpd on 127.0.0.1 without SASL. Held as a possible content filter's
// re-injection, it is traced once that link had its time (reinjectWait),
// not after --link-wait.
func TestLabFoundLoopbackClient(t *testing.T) {
	lines := []string{
		"Dec 06 03:36:55 mx postfix/smtpd[13205]: 4171B98F0AB: client=localhost[127.0.0.1]",
		"Dec 06 03:36:55 mx postfix/cleanup[13207]: 4171B98F0AB: info: header Subject: Nightly report from localhost[127.0.0.1]; from=<app@lab.test> to=<walter@lab.test> proto=ESMTP helo=<client.remote.test>",
		"Dec 06 03:36:55 mx postfix/cleanup[13207]: 4171B98F0AB: message-id=<maillab-msg-74bd1088ce7e@lab.test>",
		"Dec 06 03:36:55 mx postfix/qmgr[13046]: 4171B98F0AB: from=<app@lab.test>, size=488, nrcpt=1 (queue active)",
		"Dec 06 03:36:56 mx postfix/lmtp[13224]: 4171B98F0AB: to=<walter@lab.test>, relay=127.0.0.1[127.0.0.1]:40293, delay=0.98, delays=0.52/0.16/0.01/0.28, dsn=2.0.0, status=sent (250 2.0.0 <walter@lab.test> WFIJOFfYFGtdMgAAg+zDdQ Saved)",
		"Dec 06 03:36:56 mx postfix/qmgr[13046]: 4171B98F0AB: removed",
	}
	s := newMemStore()
	c := NewCorrelator(labCfg, s.Append) // LinkWait: 5 minutes
	for _, l := range lines {
		if err := c.Feed(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Advance(time.Date(2026, 12, 6, 3, 37, 40, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	id := c.TraceID("mx", "4171B98F0AB")
	if id == "" {
		t.Fatal("45 s after its receipt the message is still held")
	}
	checkRows(t, s, id, map[string]wantRow{"walter@lab.test": {status: mailflow.StatusDelivered, events: []mailflow.EventType{mailflow.EventDeliver}, direction: mailflow.DirectionInternal}})
}

// An amavis hop whose first hop's receipt is not in the file (the file
// begins between the first hop's queueing and its hand-over to amavis):
// the re-injection (earlier in the log than the first hop's "queued as")
// joins the first hop's trace. Real lines: postfix-logsums, the message
// of EXPECTED.md's case 8, less the first hop's pickup, cleanup and qmgr.
func TestLabFoundAmavisFirstReceiptMissing(t *testing.T) {
	lines := logsumsLines(t, func(l string) bool {
		if !strings.Contains(l, "4PcV4H6fDlz3tG5") && !strings.Contains(l, "4PcV4K5FPLz3tBr") && !strings.Contains(l, "(454812-06)") {
			return false
		}
		// the first hop's receipt (pickup, cleanup, qmgr): before the file
		return !strings.Contains(l, "4PcV4H6fDlz3tG5: ") || strings.Contains(l, "to=<") || strings.Contains(l, "removed")
	})
	if len(lines) != 9 {
		t.Fatalf("%d lines, want 9", len(lines))
	}
	s, c := run(t, configFor("postfix-logsums/mail.log.gz"), lines...)
	first, second := c.TraceID("helga", "4PcV4H6fDlz3tG5"), c.TraceID("helga", "4PcV4K5FPLz3tBr")
	if first == "" || first != second {
		t.Fatalf("first hop's trace %q, the re-injection's %q: want one", first, second)
	}
	checkRows(t, s, first, map[string]wantRow{"user02.test@uhu-banane.com": {status: mailflow.StatusFailed,
		events: []mailflow.EventType{mailflow.EventTransfer, mailflow.EventFail}}})
}

// logsumsLines returns the lines of postfix-logsums (read in place) that
// keep says.
func logsumsLines(t *testing.T, keep func(string) bool) []string {
	t.Helper()
	needMaildata(t)
	f, err := os.Open(filepath.Join(maildata, "postfix-logsums/mail.log.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(z)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); keep(l) {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// A content filter's re-injection from 127.0.0.1 keeps its first hop's
// direction: postfix-logsums' message from 185.31.160.120 to frank@ (an
// alias of user01.test@), through amavis (queued as 4PbC4z6W5Qz3tG3,
// re-injected from localhost), is Inbound on every event, and frank@'s
// row is Resolved then Delivered by the second hop.
func TestLabFoundReinjectionKeepsDirection(t *testing.T) {
	lines := logsumsLines(t, func(l string) bool {
		return strings.Contains(l, "4PbC4x469Jz3tBr") || strings.Contains(l, "4PbC4z6W5Qz3tG3")
	})
	s, c := run(t, configFor("postfix-logsums/mail.log.gz"), lines...)
	id := c.TraceID("helga", "4PbC4x469Jz3tBr")
	if id == "" || c.TraceID("helga", "4PbC4z6W5Qz3tG3") != id || len(s.traces) != 1 {
		t.Fatalf("%d traces, want one across the filter", len(s.traces))
	}
	for _, e := range s.traces[id] {
		if e.Direction != mailflow.DirectionInbound {
			t.Errorf("%s %s of %s: direction %q, want Inbound", e.Type, e.Recipient, e.Source, e.Direction)
		}
	}
	checkRows(t, s, id, map[string]wantRow{"frank@brehm-berlin.de": {status: mailflow.StatusDelivered,
		events: []mailflow.EventType{mailflow.EventResolve, mailflow.EventTransfer, mailflow.EventDeliver}}})
}
