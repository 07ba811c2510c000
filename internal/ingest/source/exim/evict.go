package exim

// The cap on messages in flight (source.Config.MaxInFlight), as the
// Postfix source has it: the messages kept whole are in a list, most
// recently active first; past the cap the least recently active is
// evicted (its aliases decided, what they held emitted) and a compact
// record of it stays, at most source.Config.MaxEvicted of them, oldest
// forgotten first (source.LRU and source.Ring): what a late line needs for its rows to come out as
// they would have. Its trace ID needs nothing (a digest of host and id);
// the record keeps what decides the direction and how each alias was
// decided. The message-level attributes (sender, subject...) are not
// kept: they were emitted already, and the store never erases a known
// value with an empty one.

// evicted is the compact record of an evicted message.
type evicted struct {
	flags uint8
	// aliases: the alias and its one member when resolved, "" when
	// expanded
	aliases map[string]string
}

const (
	evOrg uint8 = 1 << iota
	evAnyIn
	evAnyOut
	evSenderKnown
	evCompleted
)

// keyHash is FNV-1a (64 bits) of host, a zero byte and the id.
func keyHash(host, id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(host); i++ {
		h = (h ^ uint64(host[i])) * 1099511628211
	}
	h *= 1099511628211
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return h
}

// drop forgets m for good.
func (c *Source) drop(m *message) {
	delete(c.msgs, m.Host+"\x00"+m.ID)
	c.inFlight.Remove(&m.lru)
}

// capInFlight evicts the least recently active messages over the cap.
func (c *Source) capInFlight() {
	for m := c.inFlight.Over(len(c.msgs), c.cfg.MaxInFlight); m != nil; m = c.inFlight.Over(len(c.msgs), c.cfg.MaxInFlight) {
		c.evict(m)
	}
}

func (c *Source) evict(m *message) {
	c.decideAll(m)
	c.drop(m)
	c.env.Stats.Evicted++
	if c.cfg.MaxEvicted <= 0 {
		return
	}
	var r evicted
	for f, ok := range map[uint8]bool{evOrg: m.Org, evAnyIn: m.AnyIn, evAnyOut: m.AnyOut, evSenderKnown: m.SenderKnown, evCompleted: m.Completed} {
		if ok {
			r.flags |= f
		}
	}
	for a, g := range m.Groups {
		if r.aliases == nil {
			r.aliases = map[string]string{}
		}
		r.aliases[a] = ""
		if g.Mode == groupResolved {
			r.aliases[a] = g.Members[0]
		}
	}
	c.evicted.Put(keyHash(m.Host, m.ID), r)
}

// recall returns the record of an evicted message and forgets it.
func (c *Source) recall(host, id string) (evicted, bool) {
	if c.evicted.Len() == 0 {
		return evicted{}, false
	}
	return c.evicted.Take(keyHash(host, id))
}

// rehydrate makes the new message m whole again from its record.
func (c *Source) rehydrate(m *message, r *evicted) {
	m.Org, m.AnyIn, m.AnyOut = r.flags&evOrg != 0, r.flags&evAnyIn != 0, r.flags&evAnyOut != 0
	m.SenderKnown, m.Completed = r.flags&evSenderKnown != 0, r.flags&evCompleted != 0
	m.Counted = true
	for a, member := range r.aliases {
		if m.Groups == nil {
			m.Groups = map[string]*group{}
		}
		if member != "" {
			m.Groups[a] = &group{Members: []string{member}, Mode: groupResolved}
		} else {
			m.Groups[a] = &group{Mode: groupExpanded}
		}
	}
}
