package source

import "iter"

// The cap on messages in flight (Config.MaxInFlight), as every MTA source
// keeps it: the messages a source keeps whole are in an LRU, most recently
// active first; past the cap the least recently active is evicted (what it
// held emitted, as the ageing sweep would) and a compact record of it
// stays in a Ring of at most Config.MaxEvicted, oldest forgotten first,
// for a late line to join the same trace. What a record holds is the
// source's own; the list and the ring are these two types.

// LRU is the list of a source's messages in flight, most recently active
// first. It is intrusive: a message holds its LRUNode, so a line moving
// its message to the front allocates nothing. The zero value is an empty
// list.
type LRU[T any] struct{ head, tail *LRUNode[T] }

// LRUNode is a message's place in an LRU, a field of the message; its zero
// value is in no list.
type LRUNode[T any] struct {
	prev, next *LRUNode[T]
	owner      *T
}

// Touch makes m, whose node is n, the most recently active (pushing it if
// it is not in the list).
func (l *LRU[T]) Touch(n *LRUNode[T], m *T) {
	if l.head == n {
		return
	}
	l.Remove(n)
	n.owner = m
	n.next = l.head
	if l.head != nil {
		l.head.prev = n
	}
	l.head = n
	if l.tail == nil {
		l.tail = n
	}
}

// Remove takes n out of the list (nothing when it is not in it).
func (l *LRU[T]) Remove(n *LRUNode[T]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else if l.head == n {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else if l.tail == n {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

// Oldest returns the least recently active message, nil when the list is
// empty.
func (l *LRU[T]) Oldest() *T {
	if l.tail == nil {
		return nil
	}
	return l.tail.owner
}

// Over returns the least recently active message when n messages in
// flight are over the cap max (Config.MaxInFlight; none when max <= 0),
// else nil: the next to evict.
func (l *LRU[T]) Over(n, max int) *T {
	if max <= 0 || n <= max {
		return nil
	}
	return l.Oldest()
}

// Ring keeps the compact records of evicted messages by key, at most its
// cap of them: past it the oldest record is forgotten. A record taken back
// (a late line made its message whole again) leaves its place empty, and a
// record put again under a key it holds replaces its older self, as the
// newest. Expire forgets the oldest records that are done with (a
// finished message's, after Config.ForgetAfter of log time), so that the
// ring holds what late lines may still need, not its cap of records. Its
// zero value keeps nothing; see NewRing.
type Ring[K comparable, V any] struct {
	max int
	// slots is a circular buffer: n places from head, oldest first, some
	// empty (taken); it grows to max by a quarter at a time, and shrinks
	// when Expire leaves it mostly empty
	slots   []ringSlot[K, V]
	head, n int
	idx     map[K]int32 // key -> its slot
}

type ringSlot[K comparable, V any] struct {
	key  K
	val  V
	used bool
}

// NewRing returns a ring of at most max records (none when max <= 0).
func NewRing[K comparable, V any](max int) *Ring[K, V] { return &Ring[K, V]{max: max} }

// Len returns how many records the ring holds.
func (r *Ring[K, V]) Len() int { return len(r.idx) }

// minRing is the size the slots start at (and never shrink below).
const minRing = 64

// Put keeps v under k, forgetting the oldest record when the ring is full.
func (r *Ring[K, V]) Put(k K, v V) {
	if r.max <= 0 {
		return
	}
	if r.idx == nil {
		r.idx = map[K]int32{}
	}
	if i, ok := r.idx[k]; ok {
		r.slots[i] = ringSlot[K, V]{}
	}
	if r.n == len(r.slots) {
		if len(r.slots) < r.max {
			// by a quarter: a ring that holds ForgetAfter's worth of
			// records is near that, not up to twice it
			r.resize(min(r.max, max(minRing, len(r.slots)+len(r.slots)/4)))
		} else {
			r.popOldest()
		}
	}
	i := (r.head + r.n) % len(r.slots)
	r.slots[i] = ringSlot[K, V]{key: k, val: v, used: true}
	r.idx[k] = int32(i)
	r.n++
}

// popOldest forgets the oldest place (its record, if not taken).
func (r *Ring[K, V]) popOldest() {
	if old := &r.slots[r.head]; old.used && r.idx[old.key] == int32(r.head) {
		delete(r.idx, old.key)
	}
	r.slots[r.head] = ringSlot[K, V]{}
	r.head = (r.head + 1) % len(r.slots)
	r.n--
}

// resize moves the places to slots of size (at least n), oldest first,
// and indexes them anew: in the same map when the ring grows (a new one
// beside it would double the index for a moment), in a new one when it
// shrinks (a map never gives its memory back).
func (r *Ring[K, V]) resize(size int) {
	slots := make([]ringSlot[K, V], size)
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
func (r *Ring[K, V]) Take(k K) (V, bool) {
	i, ok := r.idx[k]
	if !ok {
		var zero V
		return zero, false
	}
	v := r.slots[i].val
	r.slots[i] = ringSlot[K, V]{}
	delete(r.idx, k)
	return v, true
}

// Peek returns the record of k, leaving it there (nil when there is none):
// valid until the next Put or Expire.
func (r *Ring[K, V]) Peek(k K) *V {
	if i, ok := r.idx[k]; ok {
		return &r.slots[i].val
	}
	return nil
}

// Expire forgets the oldest records for which done is true, up to the
// first that is not (so a record put later than one still needed waits
// for it: never forgotten early, at worst late). It returns how many
// records it forgot.
func (r *Ring[K, V]) Expire(done func(V) bool) int {
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
	if len(r.slots) > minRing && r.n < len(r.slots)/4 {
		r.resize(max(minRing, 2*r.n))
	}
	return forgot
}

// All yields the records, oldest first.
func (r *Ring[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for j := range r.n {
			if s := &r.slots[(r.head+j)%len(r.slots)]; s.used && !yield(s.key, s.val) {
				return
			}
		}
	}
}
