package ingest

import (
	"slices"
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Lines of the mail lab's Exim 4.96 (its own log file, known by its shape:
// no host) and rspamd's normal worker behind Exim's spam ACL (its log
// shipped as syslog lines of the mail server's host), as the lab wrote
// them: GTUBE refused after DATA, rspamd's soft reject deferred, the
// add-header variant delivered. Exim's refusals name neither the
// recipient nor the Message-ID; rspamd's verdicts name both, and Exim's
// message id as qid.
const (
	xRejectScan = "2026-12-06T09:02:58Z mx rspamd: #6268(normal) <cd9f9d>; task; rspamd_task_write_log: id: <maillab-msg-70fc7970ddd5@lab.test>, qid: <1xa894-0001iG-1k>, ip: 203.0.113.25, from: <spammer@remote.test>, (default: S (reject): [15.00/15.00] [GTUBE(0.00){}]), len: 602, time: 0.406ms, dns req: 0, digest: <f9c04964715b7c62c2ad549f4546eb30> rcpts: <dave@lab.test>,  mime_rcpt: <dave@lab.test>, "
	xRejectWarn = "2026-12-06 09:02:58 [6588] 1xa894-0001iG-1k H=(mail.remote.test) [203.0.113.25]:41234 Warning: rspamd: reject, score 15.0"
	xReject     = "2026-12-06 09:02:58 [6588] 1xa894-0001iG-1k H=(mail.remote.test) [203.0.113.25]:41234 F=<spammer@remote.test> rejected after DATA: 554 5.7.1 Spam message rejected"

	xSoftScan = "2026-12-06T09:02:58Z mx rspamd: #6268(normal) <6be652>; task; rspamd_task_write_log: id: <maillab-msg-3c067dcc1731@lab.test>, qid: <1xa894-0001iE-1k>, ip: 203.0.113.25, from: <softreject@remote.test>, (default: F (soft reject): [-0.10/15.00] [MIME_GOOD(-0.10){text/plain;},FROM_EQ_ENVFROM(0.00){},FROM_NO_DN(0.00){},LAB_SOFT_REJECT(0.00){softreject@remote.test;},MIME_TRACE(0.00){0:+;},R_DKIM_NA(0.00){},R_SPF_DNSFAIL(0.00){temporary DNS error;}]), len: 565, time: 265.247ms, dns req: 3, digest: <ca88acc049699d2007e38532d811c525> rcpts: <u61@lab.test>,  mime_rcpt: <u61@lab.test>, "
	xSoft     = "2026-12-06 09:02:58 [6586] 1xa894-0001iE-1k H=(mail.remote.test) [203.0.113.25]:41234 F=<softreject@remote.test> temporarily rejected after DATA: 451 4.7.1 Try again later"

	xJunkScan    = "2026-12-06T09:02:58Z mx rspamd: #6268(normal) <15060e>; task; rspamd_task_write_log: id: <maillab-msg-981eab401093@lab.test>, qid: <1xa894-0001iK-1k>, ip: 203.0.113.25, from: <promo@remote.test>, (default: S (add header): [6.00/15.00] [GTUBE(0.00){}]), len: 592, time: 0.431ms, dns req: 0, digest: <d257bf6f6b4a1cb305a7ca01b1ecb3c9> rcpts: <u54@lab.test>,  mime_rcpt: <u54@lab.test>, "
	xJunkArrival = `2026-12-06 09:02:58 [6592] 1xa894-0001iK-1k <= promo@remote.test H=(mail.remote.test) [203.0.113.25]:41234 P=esmtp S=557 id=maillab-msg-981eab401093@lab.test T="You have won"`
	xJunkDeliver = `2026-12-06 09:02:59 [6610] 1xa894-0001iK-1k => u54@lab.test R=mailboxes T=dovecot_lmtp H=127.0.0.1 [127.0.0.1] K C="250 2.0.0 <u54@lab.test> uHtWNMIkFWtMGAAAg+zDdQ Saved"`
	xJunkDone    = "2026-12-06 09:02:59 [6610] 1xa894-0001iK-1k Completed"
)

var eximCfg = Config{AcceptedDomains: []string{"lab.test"}}

// feedWith is feed with cfg.
func feedWith(t testing.TB, cfg Config, lines ...string) (*memStore, *Correlator) {
	t.Helper()
	s := newMemStore()
	c := NewCorrelator(cfg, s.Append)
	for _, l := range lines {
		if err := c.Feed(l); err != nil {
			t.Fatalf("Feed(%q): %v", l, err)
		}
	}
	return s, c
}

// rowsOf lists the rows of a trace as "recipient status".
func rowsOf(s *memStore, traceID string) []string {
	var out []string
	for _, r := range s.rows(traceID) {
		out = append(out, r.Recipient+" "+string(r.Status))
	}
	slices.Sort(out)
	return out
}

// Exim's refusal after DATA and rspamd's verdict, in either order (two
// logs, two shippers): one trace, found by Exim's id on no host; the
// recipient's row that rspamd's line names, with the refusal, and the
// Message-ID it names; rspamd's Scan in the timeline.
func TestJoinEximRefusalAfterDataAndRspamd(t *testing.T) {
	cases := []struct {
		name          string
		lines         []string
		rcpt, msgID   string
		status        mailflow.Status
		typ           mailflow.EventType
		dsn, action   string
		id            string
		wantScanScore string
	}{
		{"GTUBE refused, rspamd's line first", []string{xRejectScan, xRejectWarn, xReject}, "dave@lab.test", "maillab-msg-70fc7970ddd5@lab.test",
			mailflow.StatusFilteredAsSpam, mailflow.EventFilterAsSpam, "5.7.1", "reject", "1xa894-0001iG-1k", "15.00/15.00"},
		{"GTUBE refused, Exim's line first", []string{xRejectWarn, xReject, xRejectScan}, "dave@lab.test", "maillab-msg-70fc7970ddd5@lab.test",
			mailflow.StatusFilteredAsSpam, mailflow.EventFilterAsSpam, "5.7.1", "reject", "1xa894-0001iG-1k", "15.00/15.00"},
		{"soft reject: Pending, the client retries", []string{xSoftScan, xSoft}, "u61@lab.test", "maillab-msg-3c067dcc1731@lab.test",
			mailflow.StatusPending, mailflow.EventDefer, "4.7.1", "soft reject", "1xa894-0001iE-1k", "-0.10/15.00"},
		{"soft reject, Exim's line first", []string{xSoft, xSoftScan}, "u61@lab.test", "maillab-msg-3c067dcc1731@lab.test",
			mailflow.StatusPending, mailflow.EventDefer, "4.7.1", "soft reject", "1xa894-0001iE-1k", "-0.10/15.00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := feedWith(t, eximCfg, tc.lines...)
			id := c.TraceID("", tc.id)
			if len(s.traces) != 1 || id == "" {
				t.Fatalf("traces %d (%q), want one", len(s.traces), id)
			}
			if c.TraceID("mx", tc.id) != "" {
				t.Error("Exim's message found on rspamd's host, not on none")
			}
			if got := rowsOf(s, id); !slices.Equal(got, []string{tc.rcpt + " " + string(tc.status)}) {
				t.Errorf("rows %v, want %s %s alone", got, tc.rcpt, tc.status)
			}
			evs := eventsOf(s, id, tc.typ)
			i := slices.IndexFunc(evs, func(e mailflow.Event) bool { return e.Recipient == tc.rcpt })
			if i < 0 || evs[i].DSN != tc.dsn || evs[i].Source != "exim" || evs[i].ClientIP != "203.0.113.25" ||
				evs[i].MessageID != tc.msgID || evs[i].Sender == "" || evs[i].Direction != mailflow.DirectionInbound {
				t.Errorf("%s events %+v: want one for %s, DSN %s, Message-ID %s, a sender, Inbound", tc.typ, evs, tc.rcpt, tc.dsn, tc.msgID)
			}
			scans := eventsOf(s, id, mailflow.EventScan)
			if len(scans) != 1 || scans[0].Action != tc.action || scans[0].Score != tc.wantScanScore || scans[0].Recipient != "" {
				t.Errorf("scans %+v", scans)
			}
			if st := c.Stats(); len(st.NotUnderstood) != 0 || st.Ignored != int64(len(tc.lines)-2) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// A message Exim accepted: rspamd's verdict joins it by Exim's id on no
// host whichever line comes first, and names no recipient of its own:
// the rows are Exim's.
func TestJoinEximAcceptedAndRspamd(t *testing.T) {
	for name, lines := range map[string][]string{
		"as logged":          {xJunkScan, xJunkArrival, xJunkDeliver, xJunkDone},
		"rspamd's line last": {xJunkArrival, xJunkDeliver, xJunkDone, xJunkScan},
	} {
		t.Run(name, func(t *testing.T) {
			s, c := feedWith(t, eximCfg, lines...)
			id := c.TraceID("", "1xa894-0001iK-1k")
			if len(s.traces) != 1 || id == "" {
				t.Fatalf("traces %d (%q), want one", len(s.traces), id)
			}
			if got := rowsOf(s, id); !slices.Equal(got, []string{"u54@lab.test Delivered"}) {
				t.Errorf("rows %v", got)
			}
			if scans := eventsOf(s, id, mailflow.EventScan); len(scans) != 1 || scans[0].Action != "add header" {
				t.Errorf("scans %+v", scans)
			}
		})
	}
}

// Without rspamd's line the refusal stays the message's: one row with no
// recipient and no Message-ID (docs/sources.md, Exim: not covered).
func TestEximRefusalAfterDataAlone(t *testing.T) {
	s, c := run(t, eximCfg, xRejectWarn, xReject)
	id := c.TraceID("", "1xa894-0001iG-1k")
	if got := rowsOf(s, id); !slices.Equal(got, []string{" FilteredAsSpam"}) {
		t.Errorf("rows %v", got)
	}
}

// What waits across a restart of the ingester (its state saved): the
// refusal waiting for its recipients, or rspamd's verdict (with them)
// waiting for the refusal.
func TestJoinEximRefusalAcrossRestart(t *testing.T) {
	for name, split := range map[string][2][]string{
		"the refusal waiting": {{xRejectWarn, xReject}, {xRejectScan}},
		"the verdict waiting": {{xRejectScan}, {xRejectWarn, xReject}},
	} {
		t.Run(name, func(t *testing.T) {
			s, c := feedWith(t, eximCfg, split[0]...)
			st, err := c.State()
			if err != nil {
				t.Fatal(err)
			}
			c2 := NewCorrelator(eximCfg, s.Append)
			if err := c2.Restore(st); err != nil {
				t.Fatal(err)
			}
			for _, l := range split[1] {
				if err := c2.Feed(l); err != nil {
					t.Fatal(err)
				}
			}
			id := c2.TraceID("", "1xa894-0001iG-1k")
			if got := rowsOf(s, id); len(s.traces) != 1 || !slices.Equal(got, []string{"dave@lab.test FilteredAsSpam"}) {
				t.Errorf("%d traces, rows %v", len(s.traces), got)
			}
		})
	}
}
