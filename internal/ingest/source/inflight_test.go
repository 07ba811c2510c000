package source

import (
	"slices"
	"testing"
)

// The ring keeps the latest records up to its cap: a record taken is gone
// (its place stays used until its turn), a record put again replaces its
// older self as the newest, the oldest is forgotten when the ring is full,
// and All lists what is left oldest first.
func TestRing(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		ops  []int // > 0: put i; < 0: take -i (which must be there)
		want []int // what All lists, oldest first
	}{
		{"empty", 3, nil, nil},
		{"under the cap", 3, []int{1, 2, 3}, []int{1, 2, 3}},
		{"oldest forgotten", 3, []int{1, 2, 3, 4, 5}, []int{3, 4, 5}},
		{"taken is gone", 3, []int{1, 2, -1, 3, 4}, []int{2, 3, 4}},
		{"taken is gone, under the cap", 3, []int{1, 2, -1, 3}, []int{2, 3}},
		{"put again is the newest", 3, []int{1, 2, 1, 3, 4}, []int{1, 3, 4}},
		{"put again when full", 3, []int{1, 2, 3, 1, 4}, []int{3, 1, 4}},
		{"wraps twice", 3, []int{1, 2, 3, 4, 5, 6, 7, 8}, []int{6, 7, 8}},
		{"taken and put again", 3, []int{1, 2, -1, 1, 3, 4}, []int{1, 3, 4}},
		// the place a record was taken from comes round: the record put
		// again since under the same key is not forgotten with it
		{"taken, put again, its old place reused", 3, []int{1, -1, 1, 2, 3}, []int{1, 2, 3}},
		{"cap of one", 1, []int{1, 2, 3}, []int{3}},
		{"no cap keeps nothing", 0, []int{1, 2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing[int, string](tc.max)
			val := func(i int) string { return string(rune('a' + i)) }
			for _, op := range tc.ops {
				if op > 0 {
					r.Put(op, val(op))
				} else if v, ok := r.Take(-op); !ok || v != val(-op) {
					t.Fatalf("take %d: %q, %v", -op, v, ok)
				}
			}
			var got []int
			for k, v := range r.All() {
				if v != val(k) {
					t.Errorf("%d holds %q", k, v)
				}
				got = append(got, k)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("All = %v, want %v", got, tc.want)
			}
			if r.Len() != len(tc.want) {
				t.Errorf("Len = %d, want %d", r.Len(), len(tc.want))
			}
			for k := 1; k <= 9; k++ {
				p := r.Peek(k)
				if in := slices.Contains(tc.want, k); in != (p != nil) || in && *p != val(k) {
					t.Errorf("Peek(%d) = %v, want it there: %v", k, p, in)
				}
			}
			if _, ok := r.Take(99); ok {
				t.Error("Take of a key never put found one")
			}
		})
	}
}

// Expire forgets the oldest records that are done with, up to the first
// that is not: a record done with behind one still needed stays (late, never
// early), a taken record's place is passed over, and the ring goes on
// taking records afterwards.
func TestRingExpire(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		ops    []int // > 0: put i; < 0: take -i
		upTo   int   // a record i is done with when i <= upTo
		forgot int
		want   []int // then All, oldest first
		more   []int // put after, and All is want followed by them
	}{
		{"empty", 3, nil, 5, 0, nil, []int{1}},
		{"none done", 3, []int{4, 5}, 3, 0, []int{4, 5}, []int{6}},
		{"all done", 3, []int{1, 2, 3}, 3, 3, nil, []int{4, 5}},
		{"the oldest done", 5, []int{1, 2, 3, 4}, 2, 2, []int{3, 4}, []int{5, 6, 7}},
		{"done behind one still needed stays", 5, []int{1, 4, 2}, 3, 1, []int{4, 2}, nil},
		{"a taken place passed over", 5, []int{1, 2, -2, 3, 6}, 3, 2, []int{6}, []int{7}},
		{"after wrapping", 3, []int{1, 2, 3, 4, 5}, 4, 2, []int{5}, []int{6, 7}},
		{"put again after its old self", 5, []int{1, 2, 1}, 2, 2, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing[int, int](tc.max)
			for _, op := range tc.ops {
				if op > 0 {
					r.Put(op, op)
				} else if _, ok := r.Take(-op); !ok {
					t.Fatalf("take %d: not there", -op)
				}
			}
			if n := r.Expire(func(v int) bool { return v <= tc.upTo }); n != tc.forgot {
				t.Errorf("Expire forgot %d, want %d", n, tc.forgot)
			}
			all := func() []int {
				var got []int
				for k, v := range r.All() {
					if k != v {
						t.Errorf("%d holds %d", k, v)
					}
					got = append(got, k)
				}
				return got
			}
			if got := all(); !slices.Equal(got, tc.want) {
				t.Errorf("All = %v, want %v", got, tc.want)
			}
			for _, i := range tc.more {
				r.Put(i, i)
			}
			want := append(slices.Clone(tc.want), tc.more...)
			if len(want) > tc.max {
				want = want[len(want)-tc.max:]
			}
			if got := all(); !slices.Equal(got, want) {
				t.Errorf("then All = %v, want %v", got, want)
			}
			if r.Len() != len(want) {
				t.Errorf("Len = %d, want %d", r.Len(), len(want))
			}
			for _, k := range want {
				if p := r.Peek(k); p == nil || *p != k {
					t.Errorf("Peek(%d) = %v", k, p)
				}
			}
		})
	}
}

// The ring grows as records come and shrinks when Expire leaves it mostly
// empty, keeping its records, their order and its cap.
func TestRingGrowsAndShrinks(t *testing.T) {
	const max = 10_000
	r := NewRing[int, int](max)
	for i := 1; i <= 3*max; i++ {
		r.Put(i, i)
	}
	if len(r.keys) != max || r.Len() != max {
		t.Fatalf("%d slots, %d records, want %d", len(r.keys), r.Len(), max)
	}
	// all but the latest 100 done with
	if n := r.Expire(func(v int) bool { return v <= 3*max-100 }); n != max-100 {
		t.Fatalf("Expire forgot %d", n)
	}
	if len(r.keys) >= max/4 {
		t.Errorf("%d slots left for %d records", len(r.keys), r.Len())
	}
	for i := 3*max + 1; i <= 3*max+50; i++ {
		r.Put(i, i)
	}
	var got []int
	for k := range r.All() {
		got = append(got, k)
	}
	if len(got) != 150 || got[0] != 3*max-99 || got[149] != 3*max+50 || !slices.IsSorted(got) {
		t.Errorf("All: %d records, %v ... %v", len(got), got[:3], got[len(got)-3:])
	}
	for _, k := range []int{3*max - 99, 3 * max, 3*max + 50} {
		if p := r.Peek(k); p == nil || *p != k {
			t.Errorf("Peek(%d) = %v", k, p)
		}
	}
	for i := 1; i <= 2*max; i++ {
		r.Put(-i, -i)
	}
	if r.Len() != max || len(r.keys) != max {
		t.Errorf("refilled: %d records in %d slots, want %d", r.Len(), len(r.keys), max)
	}
}

// A record read by Peek can be changed in place.
func TestRingPeekInPlace(t *testing.T) {
	r := NewRing[string, int](2)
	r.Put("a", 1)
	*r.Peek("a") = 2
	if v, ok := r.Take("a"); !ok || v != 2 {
		t.Errorf("Take = %d, %v", v, ok)
	}
}

// The list is most recently active first: Touch moves a message to the
// front (pushing a new one), Remove takes one out wherever it is, Oldest is
// the one to evict.
func TestLRU(t *testing.T) {
	type msg struct {
		name string
		node LRUNode[msg]
	}
	for _, tc := range []struct {
		name string
		ops  string // a letter: touch it; '-' then a letter: remove it
		want string // from the most recently active to the oldest
	}{
		{"empty", "", ""},
		{"pushed in order", "abc", "cba"},
		{"touched again", "abca", "acb"},
		{"front touched again", "abcc", "cba"},
		{"oldest removed", "abc-a", "cb"},
		{"newest removed", "abc-c", "ba"},
		{"middle removed", "abc-b", "ca"},
		{"removed twice", "abc-b-b", "ca"},
		{"never pushed removed", "ab-z", "ba"},
		{"removed and pushed again", "abc-aa", "acb"},
		{"all removed", "ab-a-b", ""},
		{"all removed, then one", "ab-a-bc", "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l LRU[msg]
			msgs := map[byte]*msg{}
			get := func(b byte) *msg {
				if msgs[b] == nil {
					msgs[b] = &msg{name: string(b)}
				}
				return msgs[b]
			}
			for i := 0; i < len(tc.ops); i++ {
				if tc.ops[i] == '-' {
					i++
					l.Remove(&get(tc.ops[i]).node)
					continue
				}
				m := get(tc.ops[i])
				l.Touch(&m.node, m)
			}
			got := ""
			for n := l.head; n != nil; n = n.next {
				got += n.owner.name
			}
			back := ""
			for n := l.tail; n != nil; n = n.prev {
				back = n.owner.name + back
			}
			if got != tc.want || back != tc.want {
				t.Errorf("front to back %q, back to front %q, want %q", got, back, tc.want)
			}
			oldest := ""
			if m := l.Oldest(); m != nil {
				oldest = m.name
			}
			if want := tc.want; want != "" && oldest != want[len(want)-1:] || want == "" && oldest != "" {
				t.Errorf("Oldest = %q, want the last of %q", oldest, tc.want)
			}
		})
	}
}

// Over is the oldest message only while the messages in flight are over
// a cap, and never without one.
func TestLRUOver(t *testing.T) {
	type msg struct{ node LRUNode[msg] }
	var l LRU[msg]
	a, b := &msg{}, &msg{}
	l.Touch(&a.node, a)
	l.Touch(&b.node, b)
	for _, tc := range []struct {
		n, max int
		want   *msg
	}{
		{2, 1, a}, {3, 1, a}, {2, 2, nil}, {1, 2, nil}, {2, 0, nil}, {2, -1, nil},
	} {
		if got := l.Over(tc.n, tc.max); got != tc.want {
			t.Errorf("Over(%d, %d) = %p, want %p", tc.n, tc.max, got, tc.want)
		}
	}
	var empty LRU[msg]
	if got := empty.Over(1, 0); got != nil {
		t.Errorf("an empty list's Over = %p", got)
	}
	if got := empty.Over(2, 1); got != nil {
		t.Errorf("an empty list's Over over the cap = %p", got)
	}
}
