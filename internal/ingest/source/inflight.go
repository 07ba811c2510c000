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
// newest. Its zero value keeps nothing; see NewRing.
type Ring[K comparable, V any] struct {
	max   int
	slots []ringSlot[K, V] // in the order put, from next around (a ring once full)
	idx   map[K]int32      // key -> its slot
	next  int              // once full: the oldest slot, the next to reuse
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
	if len(r.slots) < r.max {
		r.slots = append(r.slots, ringSlot[K, V]{key: k, val: v, used: true})
		r.idx[k] = int32(len(r.slots) - 1)
		return
	}
	i := r.next
	if old := &r.slots[i]; old.used && r.idx[old.key] == int32(i) {
		delete(r.idx, old.key)
	}
	r.slots[i] = ringSlot[K, V]{key: k, val: v, used: true}
	r.idx[k] = int32(i)
	r.next = (i + 1) % len(r.slots)
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
// valid until the next Put.
func (r *Ring[K, V]) Peek(k K) *V {
	if i, ok := r.idx[k]; ok {
		return &r.slots[i].val
	}
	return nil
}

// All yields the records, oldest first.
func (r *Ring[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		n := len(r.slots)
		for j := range n {
			if s := &r.slots[(r.next+j)%n]; s.used && !yield(s.key, s.val) {
				return
			}
		}
	}
}
