package postfix

import (
	"slices"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// retireSource is a Postfix source as the engine configures it, fed lines
// by feedAt.
func retireSource() *Source {
	cfg := source.Config{AcceptedDomains: []string{"example.com"}, LinkWait: 5 * time.Second, PendingAfter: 30 * time.Minute,
		ForgetAfter: 10 * time.Minute, MaxIdle: 7 * 24 * time.Hour, MaxInFlight: 100, MaxEvicted: 1000}
	return New(cfg, &source.Env{}).(*Source)
}

var retireT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// feedAt applies a line of daemon at t0 + sec seconds and returns the
// events it emitted.
func feedAt(c *Source, sec int, daemon, msg string) []mailflow.Event {
	t := retireT0.Add(time.Duration(sec) * time.Second)
	if t.After(c.env.Now) {
		c.env.Now = t
	}
	c.env.Out = c.env.Out[:0]
	c.apply("relay1", t, msg, ParseMessage(daemon, msg), 1000)
	return slices.Clone(c.env.Out)
}

// a message received, queued for two recipients, one delivered, the other
// deferred (or both delivered), then removed
func feedRemoved(c *Source, qid string, sec int, bothSent bool) (traceID string) {
	feedAt(c, sec, "smtpd", qid+": client=mail.example.net[192.0.2.1]")
	feedAt(c, sec, "cleanup", qid+": message-id=<"+qid+"@example.net>")
	feedAt(c, sec, "qmgr", qid+": from=<s@example.net>, size=2000, nrcpt=2 (queue active)")
	feedAt(c, sec+1, "smtp", qid+": to=<A@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)")
	second := "status=deferred (connect timed out)"
	if bothSent {
		second = "status=sent (250 ok)"
	}
	evs := feedAt(c, sec+1, "smtp", qid+": to=<b@example.com>, relay=mx.example.com[203.0.113.9]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, "+second)
	feedAt(c, sec+2, "qmgr", qid+": removed")
	return evs[0].MessageTraceID
}

// A removed message becomes a compact record at once (nothing of it
// waits): its recipients with a final status by their hash, the others by
// their address; made whole again by a late line, under its trace ID, it
// knows them all.
func TestRetireRemoved(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bothSent bool
		open     []string // recipients the record names
	}{
		{"all delivered", true, nil},
		{"one deferred", false, []string{"b@example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := retireSource()
			id := feedRemoved(c, "ABC123", 0, tc.bothSent)
			if len(c.msgs) != 0 || c.inFlight.Oldest() != nil {
				t.Fatalf("%d messages still whole", len(c.msgs))
			}
			if c.env.Stats.Evicted != 0 {
				t.Errorf("retired counted as evicted: %d", c.env.Stats.Evicted)
			}
			r := c.peekEvicted("relay1", "ABC123")
			if r == nil {
				t.Fatal("no record")
			}
			if r.traceID() != id || r.flags&evRemoved == 0 {
				t.Errorf("record %+v, trace %s", r, r.traceID())
			}
			var open []string
			if r.more != nil {
				for rc := range r.more.rcpt {
					open = append(open, rc)
				}
			}
			if !slices.Equal(open, tc.open) {
				t.Errorf("record names %v, want %v", open, tc.open)
			}
			if want := 2 - len(tc.open); len(r.done()) != want || !slices.IsSorted(r.done()) {
				t.Errorf("done %v, want %d sorted hashes", r.done(), want)
			}
			if c.TraceID("relay1", "ABC123") != id {
				t.Error("TraceID does not find the record")
			}
			// a late line (a minute on): the same trace, and the message
			// knows both recipients again
			evs := feedAt(c, 60, "smtp", "ABC123: to=<b@example.com>, relay=mx.example.com[203.0.113.9]:25, delay=61, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)")
			if len(evs) != 1 || evs[0].MessageTraceID != id || evs[0].Type != mailflow.EventDeliver {
				t.Fatalf("late line: %+v", evs)
			}
			m := c.msgs["relay1\x00ABC123"]
			if m == nil || !m.hasRcpt("a@example.org") || !m.hasRcpt("b@example.com") || m.hasRcpt("c@example.com") {
				t.Fatalf("made whole again: %+v", m)
			}
			// and, not removed again, made a record again by the cap: it
			// keeps what it knew
			c.evict(m)
			r = c.peekEvicted("relay1", "ABC123")
			if r == nil || r.more != nil || len(r.done()) != 2 {
				t.Errorf("evicted again: %+v", r)
			}
		})
	}
}

// The record of a removed message is forgotten ForgetAfter (log time) after
// the removal, as the message kept whole would have been: a line for its
// queue id later starts a new trace. Until then it joins.
func TestRetiredRecordExpires(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int // seconds after the removal of the late line
		joins bool
	}{
		{"within ForgetAfter", 9 * 60, true},
		{"past ForgetAfter", 11 * 60, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := retireSource()
			id := feedRemoved(c, "ABC123", 0, true)
			// another message, removed just before the late line: its record
			// comes into the ring and the expired ones go
			feedRemoved(c, "DEF456", tc.after-3, true)
			if got := c.peekEvicted("relay1", "ABC123") != nil; got != tc.joins {
				t.Errorf("record there: %v, want %v", got, tc.joins)
			}
			evs := feedAt(c, tc.after, "smtp", "ABC123: to=<c@example.com>, relay=mx.example.com[203.0.113.9]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)")
			c.Flush()
			evs = append(evs, c.env.Out...)
			if len(evs) == 0 {
				t.Fatal("no event")
			}
			if joined := evs[0].MessageTraceID == id; joined != tc.joins {
				t.Errorf("late line joined the trace: %v, want %v", joined, tc.joins)
			}
		})
	}
}

// A message refused before queueing (NOQUEUE) is over at once: a record.
func TestRetireNoqueue(t *testing.T) {
	c := retireSource()
	evs := feedAt(c, 0, "smtpd", "NOQUEUE: reject: RCPT from mail.example.net[192.0.2.1]: 554 5.7.1 <x@example.com>: Relay access denied; from=<s@example.net> to=<x@example.com> proto=ESMTP helo=<mail>")
	if len(evs) == 0 {
		t.Fatal("no event")
	}
	if len(c.msgs) != 0 || c.evRing.Len() != 1 {
		t.Errorf("%d messages whole, %d records", len(c.msgs), c.evRing.Len())
	}
}

// recipient hashes: a removed message's final statuses only
func TestFinalStatus(t *testing.T) {
	for st, want := range map[mailflow.Status]bool{
		"": false, mailflow.StatusPending: false, mailflow.StatusDelivered: true, mailflow.StatusFailed: true,
		mailflow.StatusExpanded: true, mailflow.StatusQuarantined: true, mailflow.StatusFilteredAsSpam: true,
	} {
		if finalStatus(st) != want {
			t.Errorf("finalStatus(%q) = %v", st, !want)
		}
	}
	done := []uint64{rcptHash("b@x"), rcptHash("a@x")}
	slices.Sort(done)
	for rc, want := range map[string]bool{"a@x": true, "b@x": true, "c@x": false, "": false} {
		if doneRcpt(done, rc) != want {
			t.Errorf("doneRcpt(%q) = %v", rc, !want)
		}
	}
	if doneRcpt(nil, "a@x") {
		t.Error("doneRcpt(nil)")
	}
}
