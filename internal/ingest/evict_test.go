package ingest

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// evictLog is a log of n messages interleaved, in two parts: early (each
// message received, queued, a first delivery attempt, some through a
// content filter) and late (their outcomes, after every other message's
// early lines: with a small cap each message has been evicted by then).
// Even messages have short queue ids (reused by Postfix: their trace ID
// needs the start time), odd ones long ones. Kinds by i%5: delivered
// after a deferral; expired (the recipients still pending are failed: only
// the statuses kept at eviction know them); bounced; an alias expansion
// (orig_to) delivered late; through a content filter (its second hop's
// lines come before the first hop's "queued as" that links them).
func evictLog(n int) (early, late []string, want map[int]mailflow.Status) {
	t0 := time.Date(2024, 12, 31, 10, 0, 0, 0, time.UTC)
	stamp := func(sec int) string { return t0.Add(time.Duration(sec) * time.Second).Format(time.Stamp) }
	qid := func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("%X", 0xA00000+i)
		}
		return fmt.Sprintf("4Q%04dxz%04d", i, i)
	}
	child := func(i int) string { return fmt.Sprintf("%X", 0xC00000+i) }
	want = map[int]mailflow.Status{}
	sec := 0
	line := func(dst *[]string, prog, format string, a ...any) {
		*dst = append(*dst, fmt.Sprintf("%s mx1 postfix/%s[%d]: ", stamp(sec), prog, 100+len(prog))+fmt.Sprintf(format, a...))
	}
	for i := range n {
		q := qid(i)
		sec++
		line(&early, "smtpd", "%s: client=c%d.example.net[192.0.2.%d]", q, i, 1+i%200)
		line(&early, "cleanup", "%s: message-id=<%d@example.net>", q, i)
		line(&early, "qmgr", "%s: from=<s%d@example.net>, size=%d, nrcpt=2 (queue active)", q, i, 1000+i)
		switch i % 5 {
		case 0, 1, 2:
			line(&early, "smtp", "%s: to=<u%d@example.com>, relay=mx.example.com[198.51.100.7]:25, delay=1, delays=0/0/0/1, dsn=4.4.1, status=deferred (connect timed out)", q, i)
		case 4:
			c := child(i)
			line(&early, "smtpd", "%s: client=localhost[127.0.0.1]", c)
			line(&early, "qmgr", "%s: from=<s%d@example.net>, size=%d, nrcpt=1 (queue active)", c, i, 1100+i)
			line(&early, "smtp", "%s: to=<u%d@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %s)", q, i, c)
		}
	}
	for i := range n {
		q := qid(i)
		sec++
		switch i % 5 {
		case 0:
			// a retry: qmgr says "queue active" again (no second submit)
			line(&late, "qmgr", "%s: from=<s%d@example.net>, size=%d, nrcpt=2 (queue active)", q, i, 1000+i)
			line(&late, "smtp", "%s: to=<u%d@example.com>, relay=mx.example.com[198.51.100.7]:25, delay=9, delays=0/0/0/9, dsn=2.0.0, status=sent (250 ok)", q, i)
			line(&late, "qmgr", "%s: removed", q)
			want[i] = mailflow.StatusDelivered
		case 1:
			line(&late, "qmgr", "%s: from=<s%d@example.net>, status=expired, returned to sender", q, i)
			line(&late, "qmgr", "%s: removed", q)
			want[i] = mailflow.StatusFailed
		case 2:
			line(&late, "smtp", "%s: to=<u%d@example.com>, relay=mx.example.com[198.51.100.7]:25, delay=9, delays=0/0/0/9, dsn=5.1.1, status=bounced (550 no such user)", q, i)
			line(&late, "qmgr", "%s: removed", q)
			want[i] = mailflow.StatusFailed
		case 3:
			line(&late, "local", "%s: to=<u%d@example.com>, orig_to=<alias%d@example.com>, relay=local, delay=9, delays=0/0/0/9, dsn=2.0.0, status=sent (delivered to mailbox)", q, i, i)
			line(&late, "qmgr", "%s: removed", q)
			want[i] = mailflow.StatusDelivered
		case 4:
			line(&late, "qmgr", "%s: removed", q)
			c := child(i)
			line(&late, "lmtp", "%s: to=<u%d@example.com>, relay=mbox[192.0.2.250]:24, delay=9, delays=0/0/0/9, dsn=2.0.0, status=sent (250 ok)", c, i)
			line(&late, "qmgr", "%s: removed", c)
			want[i] = mailflow.StatusDelivered
		}
	}
	return early, late, want
}

type emitted struct {
	trace, rcpt string
	typ         mailflow.EventType
}

// ingestEvict feeds early then late to a correlator of cap maxInFlight,
// through a saved and restored state between them when restart is set.
func ingestEvict(t *testing.T, maxInFlight, maxEvicted int, restart bool, early, late []string) (*memStore, map[emitted]int, Stats) {
	t.Helper()
	cfg := testCfg
	cfg.MaxMessagesInFlight, cfg.MaxEvictedMessages = maxInFlight, maxEvicted
	s := newMemStore()
	got := map[emitted]int{}
	emit := func(evs []mailflow.Event) error {
		for _, e := range evs {
			got[emitted{e.MessageTraceID, e.Recipient, e.Type}]++
		}
		return s.Append(evs)
	}
	c := NewCorrelator(cfg, emit)
	feed := func(lines []string) {
		for _, l := range lines {
			if err := c.Feed(l); err != nil {
				t.Fatalf("Feed(%q): %v", l, err)
			}
		}
	}
	feed(early)
	st := c.Stats()
	if restart {
		saved, err := c.State()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(saved)
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		c = NewCorrelator(cfg, emit)
		if err := c.Restore(back); err != nil {
			t.Fatal(err)
		}
	}
	feed(late)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	st.Evicted += c.Stats().Evicted
	return s, got, st
}

// A cap on messages in flight loses nothing and changes nothing: with a
// cap of 10, 100 interleaved messages whose outcomes come after every
// other message's first lines emit the same events (trace ID, type,
// recipient) as without a cap, each message's rows end in the right
// status under one trace ID, and a restart between the two parts (the
// compact records in the saved state) changes nothing either.
func TestCorrelatorMessagesInFlightCap(t *testing.T) {
	const n = 100
	early, late, want := evictLog(n)
	_, ref, refStats := ingestEvict(t, -1, 0, false, early, late)
	if refStats.Evicted != 0 {
		t.Fatalf("no cap: %d evicted", refStats.Evicted)
	}
	for _, tc := range []struct {
		name       string
		cap        int
		maxEvicted int
		restart    bool
	}{
		{"cap 10", 10, 0, false},
		{"cap 1", 1, 1000, false},
		{"cap 10, restart", 10, 0, true},
		{"default cap", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, got, st := ingestEvict(t, tc.cap, tc.maxEvicted, tc.restart, early, late)
			if tc.cap > 0 && st.Evicted < n {
				t.Errorf("evicted %d, want at least %d", st.Evicted, n)
			}
			if d := diffEmitted(ref, got); d != "" {
				t.Errorf("events differ from those without a cap:\n%s", d)
			}
			if len(s.traces) != n {
				t.Errorf("%d traces, want %d", len(s.traces), n)
			}
			for i := range n {
				rcpt := fmt.Sprintf("u%d@example.com", i)
				if i%5 == 3 {
					// a single-address alias: its row is the original
					// recipient's (issue 16)
					rcpt = fmt.Sprintf("alias%d@example.com", i)
				}
				var found []string
				for id := range s.traces {
					for _, r := range s.rows(id) {
						if r.Recipient == rcpt {
							found = append(found, id)
							if r.Status != want[i] {
								t.Errorf("message %d: %s, want %s", i, r.Status, want[i])
							}
						}
					}
				}
				if len(found) != 1 {
					t.Errorf("message %d: rows in traces %v, want one", i, found)
				}
			}
		})
	}
}

func diffEmitted(want, got map[emitted]int) string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, fmt.Sprintf("%+v: %d times, want %d", k, got[k], v))
		}
	}
	for k, v := range got {
		if want[k] == 0 {
			out = append(out, fmt.Sprintf("extra %+v: %d times", k, v))
		}
	}
	sort.Strings(out)
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... %d more", len(out)-20))
	}
	s := ""
	for _, l := range out {
		s += l + "\n"
	}
	return s
}

// Past the cap on compact records (MaxEvictedMessages) the oldest is
// forgotten: a very late line for it starts a new trace, as documented.
func TestCorrelatorEvictedRecordsCapped(t *testing.T) {
	early, late, _ := evictLog(20)
	cfg := testCfg
	cfg.MaxMessagesInFlight, cfg.MaxEvictedMessages = 2, 3
	s, c := run(t, cfg, append(early, late...)...)
	if len(s.traces) <= 20 {
		t.Errorf("%d traces: the forgotten messages' late lines should have started new ones", len(s.traces))
	}
	if c.Stats().Evicted == 0 {
		t.Error("nothing evicted")
	}
}
