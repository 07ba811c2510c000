// Package exim is the ingest's source for Exim's logs: its main log, read
// from syslog ("exim[pid]: ...") or from Exim's own log file (lines that
// start with Exim's timestamp, see ParseMainlog), in the formats of Exim
// 4.x, both message id formats (16 characters before 4.97, 23 from 4.97)
// in one stream.
//
// A message is its Exim message id on a host: arrivals ("<="), deliveries
// ("=>", "->"), failures ("**"), deferrals ("=="), "Completed", frozen and
// thawed; an ACL's reject at RCPT or after DATA (logged with no message
// id) is a message of its own, as Postfix's NOQUEUE rejects are; a bounce
// ("<= <> R=<id>") is a message of its own whose arrival puts a Notify
// event on the message it reports on. An address routed through a
// redirect router ("=> member <alias@...>") makes the alias's row
// Expanded, with a row per member, when it has several members, and
// Resolved (a Resolve event, the member's outcome on the alias's row)
// when it has one: the members of an alias are known once the message
// is Completed, or when its deliveries have gone quiet for a while
// (groupWait), and the members' events wait until then.
//
// Its files follow its concerns as the Postfix source's do: prepare.go
// (what a line is worth, from the line alone; Exim's own log file's
// shape), parse.go (the grammar of Exim's lines), machine.go (a message's
// lifecycle), policy.go (pure decisions), ids.go, state.go (what survives a
// restart) and evict.go (the cap on messages in flight).
//
// # Trace IDs and restarts
//
// Exim's message ids are never reused (they encode the time, the pid and
// a fraction of the second), so a message's trace ID is a digest of its
// host and id alone: a source restarted with no state gives the later
// lines of a message the trace ID its earlier lines got. State carries
// what a later line needs beside it (the sender and the client, which
// decide the direction; aliases waiting for their members).
package exim

import (
	"sort"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
)

// Reasons a line of Exim's is not understood, keys of
// source.Stats.NotUnderstood.
const (
	ReasonUnknownLine = "unknown exim line"
)

// groupWait is how long (log time) the members of an alias wait for the
// rest of their group when the message is not Completed (a member
// deferred): past it the alias is decided on the members seen.
const groupWait = 30 * time.Second

// Source correlates Exim's lines (source.Source).
type Source struct {
	cfg  source.Config
	env  *source.Env
	msgs map[string]*message // host\x00id
	// the cap on messages in flight (evict.go): msgs in a list, most
	// recently active first; the compact records of evicted messages
	inFlight source.LRU[message]
	evicted  *source.Ring[uint64, evicted]
}

// New returns the Exim source: it emits into env and counts there.
func New(cfg source.Config, env *source.Env) source.Source {
	return &Source{cfg: cfg, env: env, msgs: map[string]*message{}, evicted: source.NewRing[uint64, evicted](cfg.MaxEvicted)}
}

// TraceID returns the trace ID of the message id on host while the source
// remembers it ("" otherwise).
func (c *Source) TraceID(host, id string) string {
	if c.msgs[host+"\x00"+id] != nil || c.evicted.Len() > 0 && c.evicted.Peek(keyHash(host, id)) != nil {
		return traceIDFor(host, id)
	}
	return ""
}

// Consume reads one line Prepare claimed.
func (c *Source) Consume(l *source.Line) {
	r := Parse(l.Message)
	switch r.Kind {
	case KindIgnored:
		c.env.Stats.Ignored++
		return
	case KindUnknown:
		c.env.Stats.Skip(ReasonUnknownLine)
		return
	}
	c.apply(l.Host, l.UTC, l.Raw, r)
	c.env.Stats.Used++
	c.capInFlight()
}

// Sweep decides the aliases whose members went quiet and forgets the
// messages that are finished or idle.
func (c *Source) Sweep() {
	if len(c.msgs) == 0 {
		return // no Exim line read: most logs (every 10 s of log time)
	}
	wait := groupWait
	if c.cfg.LinkWait > 0 && c.cfg.LinkWait < wait {
		wait = c.cfg.LinkWait
	}
	for _, m := range c.sorted(func(m *message) bool {
		return m.hasPending(c.env.Now, wait) || (m.Completed && c.env.Now.Sub(m.CompletedAt) > c.cfg.ForgetAfter) || c.env.Now.Sub(m.Last) > c.cfg.MaxIdle
	}) {
		for _, a := range m.pendingGroups() {
			if c.env.Now.Sub(m.Groups[a].Since) > wait {
				c.decide(m, a)
			}
		}
		if (m.Completed && c.env.Now.Sub(m.CompletedAt) > c.cfg.ForgetAfter) || c.env.Now.Sub(m.Last) > c.cfg.MaxIdle {
			c.decideAll(m)
			c.drop(m)
		}
	}
}

// Flush decides every alias still waiting for its members. Messages are
// kept.
func (c *Source) Flush() {
	for _, m := range c.sorted(func(m *message) bool { return len(m.Groups) > 0 }) {
		c.decideAll(m)
	}
}

// sorted lists the messages keep selects in a stable order (first seen,
// then key), so that what a sweep emits does not depend on map order.
func (c *Source) sorted(keep func(*message) bool) []*message {
	var out []*message
	for _, m := range c.msgs {
		if keep(m) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].First.Equal(out[j].First) {
			return out[i].First.Before(out[j].First)
		}
		return out[i].Host+out[i].ID < out[j].Host+out[j].ID
	})
	return out
}
