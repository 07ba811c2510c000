package postfix

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The ring of compact records keeps the latest MaxEvicted: a record
// recalled is gone, a record evicted again replaces its older self, and
// the oldest is forgotten when the ring is full.
func TestEvictedRing(t *testing.T) {
	rec := func(i int) evicted {
		r := evicted{first: int64(i)}
		r.id[0] = byte(i)
		return r
	}
	for _, tc := range []struct {
		name   string
		ops    []int // > 0: remember i; < 0: recall -i
		have   []int
		absent []int
	}{
		{"under the cap", []int{1, 2, 3}, []int{1, 2, 3}, nil},
		{"oldest forgotten", []int{1, 2, 3, 4, 5}, []int{3, 4, 5}, []int{1, 2}},
		{"recalled is gone", []int{1, 2, -1, 3, 4}, []int{2, 3, 4}, []int{1}},
		{"evicted again", []int{1, 2, 1, 3, 4}, []int{1, 3, 4}, []int{2}},
		{"wraps twice", []int{1, 2, 3, 4, 5, 6, 7, 8}, []int{6, 7, 8}, []int{1, 2, 3, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(source.Config{MaxInFlight: 1, MaxEvicted: 3}, &source.Env{}).(*Source)
			for _, op := range tc.ops {
				if op > 0 {
					c.remember(keyHash("h", fmt.Sprint(op)), rec(op))
				} else if _, ok := c.recall("h", fmt.Sprint(-op)); !ok {
					t.Fatalf("recall %d: not found", -op)
				}
			}
			for _, i := range tc.have {
				r := c.peekEvicted("h", fmt.Sprint(i))
				if r == nil || r.first != int64(i) {
					t.Errorf("%d: %+v", i, r)
				}
			}
			for _, i := range tc.absent {
				if r := c.peekEvicted("h", fmt.Sprint(i)); r != nil {
					t.Errorf("%d still there: %+v", i, r)
				}
			}
			if c.evRing.Len() != len(tc.have) {
				t.Errorf("%d records indexed, want %d", c.evRing.Len(), len(tc.have))
			}
			st := c.evictedState()
			if len(st) != len(tc.have) {
				t.Fatalf("state: %d records, want %d", len(st), len(tc.have))
			}
		})
	}
}

// A trace ID that is not a digest's 20 hex digits survives a record.
func TestEvictedTraceID(t *testing.T) {
	for _, id := range []string{"0123456789abcdef0123", "not-a-digest", "0123456789ABCDEF0123"} {
		c := New(source.Config{MaxInFlight: 1, MaxEvicted: 3}, &source.Env{}).(*Source)
		m := &message{host: "h", qid: "ABCDE", tr: newTrace(id, "h")}
		c.remember(keyHash("h", "ABCDE"), c.record(m))
		if r := c.peekEvicted("h", "ABCDE"); r == nil || r.traceID() != id {
			t.Errorf("%q: %+v", id, r)
		}
	}
}

// A message evicted over the cap leaves the trace-ID map (its record
// answers TraceID, and a late line joins the same trace), and the record
// of a message not removed holds no removal: 1M messages that never
// finish leave 16 times the cap of such records, 40 bytes each.
func TestEvictedLeavesTraceIDs(t *testing.T) {
	cfg := source.Config{AcceptedDomains: []string{"example.com"}, LinkWait: 5 * time.Second, PendingAfter: 30 * time.Minute,
		ForgetAfter: 10 * time.Minute, MaxIdle: 7 * 24 * time.Hour, MaxInFlight: 2, MaxEvicted: 1000}
	c := New(cfg, &source.Env{}).(*Source)
	ids := map[string]string{}
	for i, qid := range []string{"AB1C01", "AB1C02", "AB1C03", "AB1C04", "AB1C05"} {
		feedAt(c, i, "smtpd", qid+": client=mail.example.net[192.0.2.1]")
		feedAt(c, i, "cleanup", qid+": message-id=<"+qid+"@example.net>")
		evs := feedAt(c, i, "qmgr", qid+": from=<s@example.net>, size=2000, nrcpt=1 (queue active)")
		if len(evs) > 0 {
			ids[qid] = evs[0].MessageTraceID
		}
		c.capInFlight()
	}
	if len(c.msgs) != 2 || c.evRing.Len() != 3 {
		t.Fatalf("%d messages in flight, %d records: want 2 and 3", len(c.msgs), c.evRing.Len())
	}
	for _, qid := range []string{"AB1C01", "AB1C02", "AB1C03"} {
		if _, ok := c.traceIDs["relay1\x00"+qid]; ok {
			t.Errorf("%s: evicted, still in the trace-ID map", qid)
		}
		r := c.peekEvicted("relay1", qid)
		if r == nil || r.rm != nil || r.flags&evRemoved != 0 {
			t.Fatalf("%s: record %+v", qid, r)
		}
		if id := c.TraceID("relay1", qid); id == "" || ids[qid] != "" && id != ids[qid] {
			t.Errorf("%s: TraceID %q, want %q", qid, id, ids[qid])
		}
	}
	// the messages in flight are answered by themselves, not the map
	for _, qid := range []string{"AB1C04", "AB1C05"} {
		if _, ok := c.traceIDs["relay1\x00"+qid]; ok || c.TraceID("relay1", qid) == "" || ids[qid] != "" && c.TraceID("relay1", qid) != ids[qid] {
			t.Errorf("%s in flight: in the map %v, TraceID %q", qid, ok, c.TraceID("relay1", qid))
		}
	}
	// without records, an evicted message's trace ID stays in the map
	cfg.MaxEvicted = -1
	c0 := New(cfg, &source.Env{}).(*Source)
	for i, qid := range []string{"AB1C01", "AB1C02", "AB1C03"} {
		feedAt(c0, i, "smtpd", qid+": client=mail.example.net[192.0.2.1]")
		feedAt(c0, i, "cleanup", qid+": message-id=<"+qid+"@example.net>")
		feedAt(c0, i, "qmgr", qid+": from=<s@example.net>, size=2000, nrcpt=1 (queue active)")
		c0.capInFlight()
	}
	if id, ok := c0.traceIDs["relay1\x00AB1C01"]; !ok || id == "" || c0.TraceID("relay1", "AB1C01") != id {
		t.Errorf("no records: evicted AB1C01's trace ID %q in the map: %v", id, ok)
	}
	want := c.TraceID("relay1", "AB1C01")
	evs := feedAt(c, 10, "smtp", "AB1C01: to=<u@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)")
	if len(evs) == 0 || evs[0].MessageTraceID != want {
		t.Errorf("late line: %+v, want trace %s", evs, want)
	}
	if s := unsafe.Sizeof(evicted{}); s > 40 {
		t.Errorf("a record is %d bytes", s)
	}
}

// A message in flight makes its maps by their first entry: one received
// and queued, with no recipient yet (as the 20,000 in flight of 1M that
// never finish), holds none; its recipients' statuses still count.
func TestMessageMapsMadeOnFirstEntry(t *testing.T) {
	c := retireSource()
	feedAt(c, 0, "smtpd", "AB2C01: client=mail.example.net[192.0.2.1]")
	feedAt(c, 0, "cleanup", "AB2C01: message-id=<AB2C01@example.net>")
	feedAt(c, 0, "qmgr", "AB2C01: from=<s@example.net>, size=2000, nrcpt=1 (queue active)")
	m := c.msgs["relay1\x00AB2C01"]
	if m == nil || m.tr == nil {
		t.Fatalf("message %+v", m)
	}
	if m.rcpt != nil || m.verdict != nil || m.tr.rcpts != nil || m.tr.expandedFrom != nil || m.tr.verdict != nil {
		t.Errorf("maps made before any entry: %v %v %v %v %v", m.rcpt, m.verdict, m.tr.rcpts, m.tr.expandedFrom, m.tr.verdict)
	}
	evs := feedAt(c, 1, "smtp", "AB2C01: to=<u@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)")
	if len(evs) != 1 || !m.hasRcpt("u@example.org") || m.rcpt["u@example.org"] != mailflow.StatusDelivered {
		t.Errorf("after a delivery: %+v, recipients %v", evs, m.rcpt)
	}
}
