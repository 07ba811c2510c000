package ingest

import (
	"slices"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Lines of one inbound message as the mail lab's Postfix, rspamd (its
// milter) and Dovecot (LMTP with Sieve) log them: rspamd's verdict names
// the queue id, Dovecot's save the LMTP session id that Postfix's 250
// reply echoes.
const (
	jClient  = "Mar  1 10:00:00 mx postfix/smtpd[11]: 4F1A2B3C4D: client=ext.example.net[203.0.113.25]"
	jMsgID   = "Mar  1 10:00:00 mx postfix/cleanup[12]: 4F1A2B3C4D: message-id=<win@ext.example.net>"
	jRspamd  = "Mar  1 10:00:01 mx rspamd: #4711(rspamd_proxy) <a1b2c3>; proxy; rspamd_task_write_log: id: <win@ext.example.net>, qid: <4F1A2B3C4D>, ip: 203.0.113.25, from: <promo@ext.example.net>, (default: T (add header): [15.00/15.00] [GTUBE(0.00){},MIME_GOOD(-0.10){text/plain;},ARC_NA(0.00){}]), len: 512, time: 10.5ms, dns req: 0, digest: <0123456789abcdef>, rcpts: <u@example.com>, mime_rcpt: <u@example.com>,"
	jQmgr    = "Mar  1 10:00:01 mx postfix/qmgr[13]: 4F1A2B3C4D: from=<promo@ext.example.net>, size=612, nrcpt=1 (queue active)"
	jJunk    = "Mar  1 10:00:01 mx dovecot: lmtp(u@example.com)<4712><Y6a3EvpUt2l+eyIAYRBqSw>: sieve: msgid=<win@ext.example.net>: stored mail into mailbox 'Junk'"
	jSent    = "Mar  1 10:00:02 mx postfix/lmtp[14]: 4F1A2B3C4D: to=<u@example.com>, relay=127.0.0.1[127.0.0.1]:24, delay=2, delays=1/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 <u@example.com> Y6a3EvpUt2l+eyIAYRBqSw Saved)"
	jRemoved = "Mar  1 10:00:02 mx postfix/qmgr[13]: 4F1A2B3C4D: removed"
)

// feed is run without the Flush at the end: what waits still waits.
func feed(t testing.TB, lines ...string) (*memStore, *Correlator) {
	t.Helper()
	s := newMemStore()
	c := NewCorrelator(testCfg, s.Append)
	for _, l := range lines {
		if err := c.Feed(l); err != nil {
			t.Fatalf("Feed(%q): %v", l, err)
		}
	}
	return s, c
}

func eventsOf(s *memStore, traceID string, typ mailflow.EventType) []mailflow.Event {
	var out []mailflow.Event
	for _, e := range s.traces[traceID] {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// rspamd's verdict and Dovecot's Sieve fileinto join Postfix's message,
// whichever order their lines come in: one trace, Delivered, its timeline
// naming the score, the action and the Junk folder.
func TestJoinRspamdAndDovecot(t *testing.T) {
	orders := map[string][]string{
		"as logged":               {jClient, jMsgID, jRspamd, jQmgr, jJunk, jSent, jRemoved},
		"dovecot shipped late":    {jClient, jMsgID, jRspamd, jQmgr, jSent, jRemoved, jJunk},
		"rspamd before client=":   {jRspamd, jClient, jMsgID, jQmgr, jJunk, jSent, jRemoved},
		"dovecot before anything": {jJunk, jClient, jMsgID, jRspamd, jQmgr, jSent, jRemoved},
	}
	for name, lines := range orders {
		t.Run(name, func(t *testing.T) {
			s, c := feed(t, lines...)
			id := c.TraceID("mx", "4F1A2B3C4D")
			if len(s.traces) != 1 || id == "" {
				t.Fatalf("traces %d (%q), want one", len(s.traces), id)
			}
			if r := rowOf(t, s, id, "u@example.com"); r.Status != mailflow.StatusDelivered {
				t.Errorf("status %s", r.Status)
			}
			scans := eventsOf(s, id, mailflow.EventScan)
			if len(scans) != 1 || scans[0].Action != "add header" || scans[0].Score != "15.00/15.00" || scans[0].Recipient != "" ||
				!slices.Equal(scans[0].Symbols, []string{"GTUBE(0.00)", "MIME_GOOD(-0.10)", "ARC_NA(0.00)"}) ||
				scans[0].Detail != "rspamd: add header, score 15.00 (reject at 15.00); symbols: MIME_GOOD(-0.10), GTUBE(0.00), ARC_NA(0.00)" {
				t.Errorf("scan %+v", scans)
			}
			saves := eventsOf(s, id, mailflow.EventSave)
			if len(saves) != 1 || saves[0].Folder != "Junk" || saves[0].Recipient != "u@example.com" || saves[0].Source != "dovecot/lmtp" ||
				saves[0].Detail != `stored into the mailbox folder "Junk" by the recipient's Sieve script` {
				t.Errorf("save %+v", saves)
			}
			// dated no earlier than the 250 it joins
			if len(saves) == 1 && saves[0].Time.Before(time.Date(2024, 3, 1, 10, 0, 2, 0, time.UTC)) {
				t.Errorf("save at %s", saves[0].Time)
			}
			if st := c.Stats(); st.Used != 7 || len(st.NotUnderstood) != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// What the recipient's Sieve did decides the status over the MTA's 250
// logged a second after: a discard is FilteredAsSpam, a reject Failed.
func TestJoinSieveDiscardAndReject(t *testing.T) {
	for _, c := range []struct {
		line string
		want mailflow.Status
		typ  mailflow.EventType
	}{
		{"Mar  1 10:00:01 mx dovecot: lmtp(u@example.com)<4712><Y6a3EvpUt2l+eyIAYRBqSw>: sieve: msgid=<win@ext.example.net>: marked message to be discarded if not explicitly delivered (discard action)",
			mailflow.StatusFilteredAsSpam, mailflow.EventFilterAsSpam},
		{"Mar  1 10:00:01 mx dovecot: lmtp(u@example.com)<4712><Y6a3EvpUt2l+eyIAYRBqSw>: sieve: msgid=<win@ext.example.net>: rejected message from <promo@ext.example.net> (reject action)",
			mailflow.StatusFailed, mailflow.EventFail},
	} {
		s, cr := run(t, testCfg, jClient, jMsgID, jQmgr, c.line, jSent, jRemoved)
		id := cr.TraceID("mx", "4F1A2B3C4D")
		if len(s.traces) != 1 {
			t.Fatalf("%d traces", len(s.traces))
		}
		if r := rowOf(t, s, id, "u@example.com"); r.Status != c.want {
			t.Errorf("%s: status %s, want %s", c.typ, r.Status, c.want)
		}
		if evs := eventsOf(s, id, c.typ); len(evs) != 1 || evs[0].Source != "dovecot/lmtp" {
			t.Errorf("%s: events %+v", c.typ, evs)
		}
	}
}

// Over quota, Dovecot's LMTP answers 552 with no session id: its line
// joins by the Message-ID and the recipient, when Postfix's bounce comes.
func TestJoinDovecotQuota(t *testing.T) {
	s, c := run(t, testCfg, jClient, jMsgID, jQmgr,
		"Mar  1 10:00:01 mx dovecot: lmtp(u@example.com)<4712><Y6a3EvpUt2l+eyIAYRBqSw>: Error: msgid=<win@ext.example.net>: save failed to INBOX: Quota exceeded (mailbox for user is full)",
		"Mar  1 10:00:02 mx postfix/lmtp[14]: 4F1A2B3C4D: to=<u@example.com>, relay=127.0.0.1[127.0.0.1]:24, delay=2, delays=1/0/0.5/0.5, dsn=5.2.2, status=bounced (host 127.0.0.1[127.0.0.1] said: 552 5.2.2 <u@example.com> Quota exceeded (mailbox for user is full) (in reply to end of DATA command))",
		jRemoved)
	id := c.TraceID("mx", "4F1A2B3C4D")
	if len(s.traces) != 1 {
		t.Fatalf("%d traces", len(s.traces))
	}
	if r := rowOf(t, s, id, "u@example.com"); r.Status != mailflow.StatusFailed {
		t.Errorf("status %s", r.Status)
	}
	evs := eventsOf(s, id, mailflow.EventFail)
	if i := slices.IndexFunc(evs, func(e mailflow.Event) bool { return e.Source == "dovecot/lmtp" }); len(evs) != 2 || i < 0 ||
		evs[i].Action != "quota" || evs[i].Folder != "INBOX" || evs[i].Time.After(evs[1-i].Time) {
		t.Errorf("fails %+v", evs)
	}
}

// A Dovecot line whose MTA line never comes waits --link-wait, then is a
// message of its own, with its Message-ID; an rspamd verdict likewise.
func TestJoinOrphansAfterLinkWait(t *testing.T) {
	s, c := feed(t,
		"Mar  1 10:00:01 mx dovecot: lda(kurio)<1640><8ntICTWUfmloBgAA8Bi3+g>: msgid=<alone@x.example.net>: saved mail to INBOX",
		"Mar  1 10:00:01 mx rspamd: <a1b2c3>; task; rspamd_task_write_log: id: <other@x.example.net>, ip: 192.0.2.9, from: <a@x.example.net>, (default: F (no action): [1.20/15.00] [R_SPF_NA(0.00){no SPF record;}]), len: 100, time: 1ms, dns req: 0, digest: <0>, rcpts: <b@example.com>,")
	if len(s.traces) != 0 {
		t.Fatalf("emitted before --link-wait: %d traces", len(s.traces))
	}
	if err := c.Advance(time.Date(2024, 3, 1, 10, 6, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if len(s.traces) != 2 {
		t.Fatalf("%d traces after --link-wait, want 2", len(s.traces))
	}
	for id, evs := range s.traces {
		if len(evs) != 1 || evs[0].MessageID == "" {
			t.Errorf("%s: %+v", id, evs)
		}
		if evs[0].Type == mailflow.EventSave && (evs[0].Recipient != "kurio" || evs[0].Folder != "INBOX") {
			t.Errorf("lda save %+v", evs[0])
		}
	}
}

// A restart (State, then Restore in a new correlator) between Dovecot's
// line and Postfix's, and between Postfix's and Dovecot's: one trace.
func TestJoinAcrossRestart(t *testing.T) {
	for name, split := range map[string][2][]string{
		"dovecot waiting":     {{jClient, jMsgID, jQmgr, jJunk}, {jSent, jRemoved}},
		"the link remembered": {{jClient, jMsgID, jQmgr, jSent}, {jJunk, jRemoved}},
		"the verdict waiting": {{jRspamd}, {jClient, jMsgID, jQmgr, jSent, jRemoved}},
	} {
		t.Run(name, func(t *testing.T) {
			s, c := feed(t, split[0]...)
			st, err := c.State()
			if err != nil {
				t.Fatal(err)
			}
			c2 := NewCorrelator(testCfg, s.Append)
			if err := c2.Restore(st); err != nil {
				t.Fatal(err)
			}
			for _, l := range split[1] {
				if err := c2.Feed(l); err != nil {
					t.Fatal(err)
				}
			}
			if err := c2.Flush(); err != nil {
				t.Fatal(err)
			}
			if len(s.traces) != 1 {
				t.Fatalf("%d traces, want 1", len(s.traces))
			}
			for id := range s.traces {
				if len(eventsOf(s, id, mailflow.EventSave))+len(eventsOf(s, id, mailflow.EventScan)) != 1 {
					t.Errorf("events %+v", s.traces[id])
				}
			}
		})
	}
}
