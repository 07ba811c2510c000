package source

import (
	"iter"
	"math/rand/v2"
	"slices"
	"testing"
)

// The ring's index (an open-addressing table, deletion by moving entries
// back) answers as a map did: random puts, takes and expiries on a few
// hundred keys, many of them colliding in small tables, against the ring
// as it was before (a map from key to place), after every operation.
func TestRingAsMapRing(t *testing.T) {
	for _, max := range []int{1, 3, 64, 100, 1000} {
		rng := rand.New(rand.NewPCG(uint64(max), 7))
		r, ref := NewRing[uint64, int](max), newRefRing[uint64, int](max)
		s, sref := NewRing[string, int](max), newRefRing[string, int](max)
		for op := range 20_000 {
			k := rng.Uint64N(uint64(3*max + 5))
			ks := string(rune('a'+k%26)) + string(rune('a'+k/26))
			switch x := rng.IntN(100); {
			case x < 60:
				r.Put(k, op)
				ref.Put(k, op)
				s.Put(ks, op)
				sref.Put(ks, op)
			case x < 90:
				v, ok := r.Take(k)
				rv, rok := ref.Take(k)
				if v != rv || ok != rok {
					t.Fatalf("max %d op %d: Take(%d) = %d, %v; want %d, %v", max, op, k, v, ok, rv, rok)
				}
				v, ok = s.Take(ks)
				rv, rok = sref.Take(ks)
				if v != rv || ok != rok {
					t.Fatalf("max %d op %d: Take(%q) = %d, %v; want %d, %v", max, op, ks, v, ok, rv, rok)
				}
			default:
				upTo := op - rng.IntN(2*max+1)
				if n, rn := r.Expire(func(v int) bool { return v <= upTo }), ref.Expire(func(v int) bool { return v <= upTo }); n != rn {
					t.Fatalf("max %d op %d: Expire forgot %d, want %d", max, op, n, rn)
				}
				s.Expire(func(v int) bool { return v <= upTo })
				sref.Expire(func(v int) bool { return v <= upTo })
			}
			if r.Len() != ref.Len() || s.Len() != sref.Len() {
				t.Fatalf("max %d op %d: Len %d, %d; want %d, %d", max, op, r.Len(), s.Len(), ref.Len(), sref.Len())
			}
			if op%97 == 0 || max <= 3 {
				sameRing(t, r.All(), ref.All())
				sameRing(t, s.All(), sref.All())
				for k := range uint64(3*max + 5) {
					p, rp := r.Peek(k), ref.Peek(k)
					if (p == nil) != (rp == nil) || p != nil && *p != *rp {
						t.Fatalf("max %d op %d: Peek(%d) = %v, want %v", max, op, k, p, rp)
					}
				}
			}
		}
	}
}

func sameRing[K comparable](t *testing.T, got, want iter.Seq2[K, int]) {
	t.Helper()
	type kv struct {
		k K
		v int
	}
	var g, w []kv
	for k, v := range got {
		g = append(g, kv{k, v})
	}
	for k, v := range want {
		w = append(w, kv{k, v})
	}
	if !slices.Equal(g, w) {
		t.Fatalf("All = %v, want %v", g, w)
	}
}

// refRing is the ring as it was before its index was a table of its own
// (a map from key to place): the reference TestRingAsMapRing checks it
// against.
type refRing[K comparable, V any] struct {
	max int
	// slots is a circular buffer: n places from head, oldest first, some
	// empty (taken); it grows to max by a quarter at a time, and shrinks
	// when Expire leaves it mostly empty
	slots   []refSlot[K, V]
	head, n int
	idx     map[K]int32 // key -> its slot
}

type refSlot[K comparable, V any] struct {
	key  K
	val  V
	used bool
}

// newRefRing returns a ring of at most max records (none when max <= 0).
func newRefRing[K comparable, V any](max int) *refRing[K, V] { return &refRing[K, V]{max: max} }

// Len returns how many records the ring holds.
func (r *refRing[K, V]) Len() int { return len(r.idx) }

// minRefRing is the size the slots start at (and never shrink below).
const minRefRing = 64

// Put keeps v under k, forgetting the oldest record when the ring is full.
func (r *refRing[K, V]) Put(k K, v V) {
	if r.max <= 0 {
		return
	}
	if r.idx == nil {
		r.idx = map[K]int32{}
	}
	if i, ok := r.idx[k]; ok {
		r.slots[i] = refSlot[K, V]{}
	}
	if r.n == len(r.slots) {
		if len(r.slots) < r.max {
			// by a quarter: a ring that holds ForgetAfter's worth of
			// records is near that, not up to twice it
			r.resize(min(r.max, max(minRefRing, len(r.slots)+len(r.slots)/4)))
		} else {
			r.popOldest()
		}
	}
	i := (r.head + r.n) % len(r.slots)
	r.slots[i] = refSlot[K, V]{key: k, val: v, used: true}
	r.idx[k] = int32(i)
	r.n++
}

// popOldest forgets the oldest place (its record, if not taken).
func (r *refRing[K, V]) popOldest() {
	if old := &r.slots[r.head]; old.used && r.idx[old.key] == int32(r.head) {
		delete(r.idx, old.key)
	}
	r.slots[r.head] = refSlot[K, V]{}
	r.head = (r.head + 1) % len(r.slots)
	r.n--
}

// resize moves the places to slots of size (at least n), oldest first,
// and indexes them anew: in the same map when the ring grows (a new one
// beside it would double the index for a moment), in a new one when it
// shrinks (a map never gives its memory back).
func (r *refRing[K, V]) resize(size int) {
	slots := make([]refSlot[K, V], size)
	idx := r.idx
	if size < len(r.slots) {
		idx = make(map[K]int32, len(r.idx))
	}
	j := 0
	for k := range r.n {
		s := r.slots[(r.head+k)%len(r.slots)]
		if !s.used {
			continue
		}
		slots[j] = s
		idx[s.key] = int32(j)
		j++
	}
	r.slots, r.idx, r.head, r.n = slots, idx, 0, j
}

// Take returns the record of k and forgets it.
func (r *refRing[K, V]) Take(k K) (V, bool) {
	i, ok := r.idx[k]
	if !ok {
		var zero V
		return zero, false
	}
	v := r.slots[i].val
	r.slots[i] = refSlot[K, V]{}
	delete(r.idx, k)
	return v, true
}

// Peek returns the record of k, leaving it there (nil when there is none):
// valid until the next Put or Expire.
func (r *refRing[K, V]) Peek(k K) *V {
	if i, ok := r.idx[k]; ok {
		return &r.slots[i].val
	}
	return nil
}

// Expire forgets the oldest records for which done is true, up to the
// first that is not (so a record put later than one still needed waits
// for it: never forgotten early, at worst late). It returns how many
// records it forgot.
func (r *refRing[K, V]) Expire(done func(V) bool) int {
	forgot := 0
	for r.n > 0 {
		s := &r.slots[r.head]
		if s.used {
			if !done(s.val) {
				break
			}
			forgot++
		}
		r.popOldest()
	}
	if len(r.slots) > minRefRing && r.n < len(r.slots)/4 {
		r.resize(max(minRefRing, 2*r.n))
	}
	return forgot
}

// All yields the records, oldest first.
func (r *refRing[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for j := range r.n {
			if s := &r.slots[(r.head+j)%len(r.slots)]; s.used && !yield(s.key, s.val) {
				return
			}
		}
	}
}
