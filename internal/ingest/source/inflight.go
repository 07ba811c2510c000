package source

import (
	"hash/maphash"
	"iter"
	"math/rand/v2"
)

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
//
// It is most of what 1M messages that never finish leave in memory (16
// times Config.MaxInFlight records), so each record costs its key, its
// value, a byte and ~6 bytes of index: the places are three arrays (no
// padding after a value), and the index is an open-addressing table of
// place numbers, not a map (a map[K]int32 took 24 bytes a record).
type Ring[K comparable, V any] struct {
	max int
	// keys, vals and used are the places, a circular buffer: n places
	// from head, oldest first, some empty (taken); they grow to max by a
	// quarter at a time, and shrink when Expire leaves them mostly empty
	keys    []K
	vals    []V
	used    []bool
	head, n int
	count   int // used places
	// idx is the index of the used places by their key: a table of
	// linear probing, a power of two of at least 1.5 times the places,
	// each entry a place + 1 (0: empty)
	idx  []int32
	seed maphash.Seed
	mix  uint64 // keys the hash of integer keys
}

// NewRing returns a ring of at most max records (none when max <= 0).
func NewRing[K comparable, V any](max int) *Ring[K, V] {
	return &Ring[K, V]{max: max, seed: maphash.MakeSeed(), mix: rand.Uint64()}
}

// Len returns how many records the ring holds.
func (r *Ring[K, V]) Len() int { return r.count }

// minRing is the size the places start at (and never shrink below).
const minRing = 64

// hash of a key, for the index.
func (r *Ring[K, V]) hash(k K) uint64 {
	switch k := any(k).(type) {
	case uint64:
		return mix64(k ^ r.mix)
	case int:
		return mix64(uint64(k) ^ r.mix)
	case string:
		return maphash.String(r.seed, k)
	}
	return maphash.Comparable(r.seed, k)
}

// mix64 is MurmurHash3's finalizer: every bit of x moves every bit of the
// result (the index takes the low ones).
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// find returns the position in idx of k's entry and whether it is there;
// when it is not, the position is the empty entry where it would go.
func (r *Ring[K, V]) find(k K) (int, bool) {
	if len(r.idx) == 0 {
		return 0, false
	}
	mask := len(r.idx) - 1
	for i := int(r.hash(k)) & mask; ; i = (i + 1) & mask {
		p := r.idx[i]
		if p == 0 {
			return i, false
		}
		if r.keys[p-1] == k {
			return i, true
		}
	}
}

// unindex empties the entry at i of idx, moving back the entries after it
// that it would have hidden (deletion without tombstones).
func (r *Ring[K, V]) unindex(i int) {
	mask := len(r.idx) - 1
	for j := (i + 1) & mask; r.idx[j] != 0; j = (j + 1) & mask {
		home := int(r.hash(r.keys[r.idx[j]-1])) & mask
		// the entry at j may move to i unless its home is in (i, j]
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			r.idx[i] = r.idx[j]
			i = j
		}
	}
	r.idx[i] = 0
}

// clearPlace empties the place p.
func (r *Ring[K, V]) clearPlace(p int) {
	var zk K
	var zv V
	r.keys[p], r.vals[p], r.used[p] = zk, zv, false
}

// Put keeps v under k, forgetting the oldest record when the ring is full.
func (r *Ring[K, V]) Put(k K, v V) {
	if r.max <= 0 {
		return
	}
	if i, ok := r.find(k); ok {
		p := int(r.idx[i] - 1)
		r.unindex(i)
		r.clearPlace(p)
		r.count--
	}
	if r.n == len(r.keys) {
		if len(r.keys) < r.max {
			// by a quarter: a ring that holds ForgetAfter's worth of
			// records is near that, not up to twice it
			r.resize(min(r.max, max(minRing, len(r.keys)+len(r.keys)/4)))
		} else {
			r.popOldest()
		}
	}
	p := (r.head + r.n) % len(r.keys)
	r.keys[p], r.vals[p], r.used[p] = k, v, true
	i, _ := r.find(k)
	r.idx[i] = int32(p + 1)
	r.n++
	r.count++
}

// popOldest forgets the oldest place (its record, if not taken).
func (r *Ring[K, V]) popOldest() {
	if r.used[r.head] {
		if i, ok := r.find(r.keys[r.head]); ok {
			r.unindex(i)
		}
		r.count--
	}
	r.clearPlace(r.head)
	r.head = (r.head + 1) % len(r.keys)
	r.n--
}

// resize moves the records to places of size (at least n), oldest first,
// and indexes them anew.
func (r *Ring[K, V]) resize(size int) {
	keys, vals, used := make([]K, size), make([]V, size), make([]bool, size)
	j := 0
	for k := range r.n {
		p := (r.head + k) % len(r.keys)
		if !r.used[p] {
			continue
		}
		keys[j], vals[j], used[j] = r.keys[p], r.vals[p], true
		j++
	}
	t := 8
	for t < size+size/2 {
		t *= 2
	}
	r.keys, r.vals, r.used, r.head, r.n, r.count = keys, vals, used, 0, j, j
	r.idx = make([]int32, t)
	for p := range j {
		i, _ := r.find(keys[p])
		r.idx[i] = int32(p + 1)
	}
}

// Take returns the record of k and forgets it.
func (r *Ring[K, V]) Take(k K) (V, bool) {
	i, ok := r.find(k)
	if !ok {
		var zero V
		return zero, false
	}
	p := int(r.idx[i] - 1)
	v := r.vals[p]
	r.unindex(i)
	r.clearPlace(p)
	r.count--
	return v, true
}

// Peek returns the record of k, leaving it there (nil when there is none):
// valid until the next Put or Expire.
func (r *Ring[K, V]) Peek(k K) *V {
	if i, ok := r.find(k); ok {
		return &r.vals[r.idx[i]-1]
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
		if r.used[r.head] {
			if !done(r.vals[r.head]) {
				break
			}
			forgot++
		}
		r.popOldest()
	}
	if len(r.keys) > minRing && r.n < len(r.keys)/4 {
		r.resize(max(minRing, 2*r.n))
	}
	return forgot
}

// All yields the records, oldest first.
func (r *Ring[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for j := range r.n {
			if p := (r.head + j) % len(r.keys); r.used[p] && !yield(r.keys[p], r.vals[p]) {
				return
			}
		}
	}
}
