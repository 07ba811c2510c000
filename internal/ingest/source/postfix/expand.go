package postfix

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Expansions: what an original recipient (a delivery line's orig_to=)
// became. Postfix logs the address each copy went to (to=) with the one
// the sender wrote (orig_to=), one line per copy, and says nowhere else
// how many copies an address made. Exchange's message trace shows a
// distribution group as the group's row (Expanded) and its members' rows,
// and an address resolved to another (an alias, a forward, a redirect) as
// one row, the original recipient's, with a Resolve event and the final
// status of the address it became. So the events of an original
// recipient's copies are held until the hop's recipients are all
// accounted for (its qmgr line's nrcpt= lines, its `removed`, or
// settleAfter of log time), then settled: one address and no copy of its
// own is a single address (its copies' events are the original's row,
// after a Resolve); two or more, or one beside a copy the original keeps
// for itself, is a group (an Expand, unless the original keeps a copy:
// then that copy's own status is the row's; the members' rows name the
// group). A second address seen after it settled as a single one makes
// it a group after all: the Expand comes then and the first address's
// events are emitted again as its own member row.

// settleAfter is how long (log time) an expansion waits for the rest of
// its hop's recipients at most.
const settleAfter = time.Minute

// expansion is what one original recipient of a hop became.
type expansion struct {
	first   time.Time        // its first copy's line
	targets []string         // the addresses its copies went to, first seen first
	held    []mailflow.Event // its copies' events, until settled
	// emitted: a single address's events as they were before the rewrite
	// to the original, for a regroup
	emitted []mailflow.Event
	local   bool // expanded by local(8) (/etc/aliases): nrcpt counts the alias, not its copies
	settled bool
	group   bool
	ownCopy bool // the original is a recipient of its own too
}

// expansion returns (making it) the expansion of orig in m.
func (m *message) expansion(orig string, t time.Time) *expansion {
	if m.exps == nil {
		m.exps = map[string]*expansion{}
	}
	x := m.exps[orig]
	if x == nil {
		x = &expansion{first: t}
		m.exps[orig] = x
	}
	return x
}

// resolvedTo returns the original recipient a resolved address stands
// for (itself when none): through the hop's own resolutions and its
// trace's (a content filter's second hop), and through a chain of them
// (root -> root@host on the first hop, root@host -> a user on the second).
func (m *message) resolvedTo(a string) string {
	for range 4 {
		o := m.resolved[a]
		if o == "" && m.tr != nil {
			o = m.tr.resolved[a]
		}
		if o == "" || o == a {
			return a
		}
		a = o
	}
	return a
}

// setResolved records that the address to stands for the original
// recipient orig (the map made on first use: most traces have none).
func (tr *trace) setResolved(to, orig string) {
	if tr.resolved == nil {
		tr.resolved = map[string]string{}
	}
	tr.resolved[to] = orig
}

// resolvedTo is message.resolvedTo of the trace's resolutions alone.
func (tr *trace) resolvedTo(a string) string {
	for range 4 {
		o := tr.resolved[a]
		if o == "" || o == a {
			return a
		}
		a = o
	}
	return a
}

// settleDue settles the expansions of m that waited settleAfter.
func (c *Source) settleDue(m *message) {
	for _, x := range m.exps {
		if !x.settled && c.env.Now.Sub(x.first) > settleAfter {
			c.settle(m, true)
			return
		}
	}
}

// unsettled returns the unsettled expansion whose copy went to rcpt.
func (m *message) unsettled(rcpt string) *expansion {
	for _, x := range m.exps {
		if !x.settled && slices.Contains(x.targets, rcpt) {
			return x
		}
	}
	return nil
}

// copyTarget records that a copy of orig went to rcpt. What the trace
// settled already (before an eviction, or on another hop) stands.
func (m *message) copyTarget(orig, rcpt string, t time.Time) *expansion {
	x := m.expansion(orig, t)
	if !slices.Contains(x.targets, rcpt) {
		x.targets = append(x.targets, rcpt)
	}
	if !x.settled && m.tr != nil {
		switch orig {
		case m.tr.expandedFrom[rcpt]:
			x.settled, x.group = true, true
		case m.tr.resolved[rcpt]:
			x.settled = len(x.targets) == 1
		}
	}
	return x
}

// copyOf handles the event e of a copy of orig that went to rcpt.
func (c *Source) copyOf(m *message, orig, rcpt, daemon string, t time.Time, e mailflow.Event) {
	x := m.copyTarget(orig, rcpt, t)
	if daemon == "local" {
		x.local = true
	}
	switch {
	case !x.settled:
		x.held = append(x.held, e)
	case x.group:
		c.addMember(m, orig, rcpt, e)
	case len(x.targets) == 1:
		x.emitted = append(x.emitted, e)
		c.add(m, e)
	default:
		c.regroup(m, orig, x, t, e)
	}
}

// settle decides the expansions of m that can be: all of them when force
// (the hop ended, or waited long enough), else those whose hop has had a
// line for every recipient its qmgr line counted.
func (c *Source) settle(m *message, force bool) {
	if len(m.exps) == 0 {
		return
	}
	all := force || m.removed || (m.nrcpt > 0 && len(m.rcpt)+len(m.done) >= m.nrcpt)
	for _, orig := range sortedKeys(m.exps) {
		x := m.exps[orig]
		if x.settled || !(all && (force || m.removed || !x.local)) {
			continue
		}
		x.settled = true
		if m.hasRcpt(orig) {
			x.ownCopy = true
		}
		held := x.held
		x.held = nil
		if len(x.targets) == 1 && !x.ownCopy {
			c.resolve(m, orig, x)
		} else {
			x.group = true
			c.expand(m, orig, x, x.first)
		}
		for _, e := range held {
			if x.group {
				c.addMember(m, orig, e.Recipient, e)
			} else {
				x.emitted = append(x.emitted, e)
				c.add(m, e)
			}
		}
	}
}

// resolve makes orig a single address resolved to x's one target: the
// target's events are the original's row, after a Resolve.
func (c *Source) resolve(m *message, orig string, x *expansion) {
	to := x.targets[0]
	if m.resolved == nil {
		m.resolved = map[string]string{}
	}
	m.resolved[to] = orig
	if m.tr != nil {
		m.tr.setResolved(to, orig)
	}
	e := c.newEvent(m, x.first, "resolve "+orig+" "+to, mailflow.EventResolve, orig, "cleanup")
	e.Detail = fmt.Sprintf("%s was resolved to %s (an alias or a redirect): the status is that of %s", orig, to, to)
	c.add(m, e)
}

// expand makes orig a group: an Expand (unless it keeps a copy of its
// own, whose status is then its row's), and its targets member rows.
func (c *Source) expand(m *message, orig string, x *expansion, t time.Time) {
	if m.expanded == nil {
		m.expanded = map[string]string{}
	}
	var members []string
	for _, to := range x.targets {
		if to == orig {
			continue
		}
		members = append(members, to)
		m.expanded[to] = orig
		if m.tr != nil && m.tr.expandedFrom[to] == "" {
			put(&m.tr.expandedFrom, to, orig)
		}
	}
	typ := mailflow.EventExpand
	detail := fmt.Sprintf("%s was expanded to %s", orig, strings.Join(members, ", "))
	if x.ownCopy {
		typ = mailflow.EventResolve
		detail += ", and keeps a copy of its own"
	}
	e := c.newEvent(m, t, "expand "+orig+" "+strings.Join(members, " "), typ, orig, "cleanup")
	e.Detail = detail
	c.add(m, e)
}

// addMember emits the event of a group member's copy.
func (c *Source) addMember(m *message, orig, rcpt string, e mailflow.Event) {
	if m.expanded[rcpt] == "" {
		if m.expanded == nil {
			m.expanded = map[string]string{}
		}
		m.expanded[rcpt] = orig
		if m.tr != nil && m.tr.expandedFrom[rcpt] == "" {
			put(&m.tr.expandedFrom, rcpt, orig)
		}
	}
	e.ExpandedFrom = orig
	c.add(m, e)
}

// regroup makes a single address a group after all: a second address came
// for orig after it settled (local(8) expanding /etc/aliases one copy at a
// time, say). The Expand comes now, later than the single address's
// events; those are emitted again as the first member's own row.
func (c *Source) regroup(m *message, orig string, x *expansion, t time.Time, e mailflow.Event) {
	first := x.targets[0]
	delete(m.resolved, first)
	if m.tr != nil {
		delete(m.tr.resolved, first)
	}
	x.group = true
	c.expand(m, orig, x, t)
	for _, ev := range x.emitted {
		ev.ID = digest(ev.ID, "member")
		c.addMember(m, orig, first, ev)
	}
	x.emitted = nil
	c.addMember(m, orig, e.Recipient, e)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
