package postfix

import (
	"fmt"
	"testing"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
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
