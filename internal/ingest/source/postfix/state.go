package postfix

import (
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// State is what the source knows about messages in flight: enough for a
// restarted source (Restore) to give the later lines of a lifecycle the
// trace ID the earlier lines got, and to emit what it was holding for a
// link. It is plain data and marshals to JSON (the engine saves it with
// its clock, see ingest.State); its JSON is that of a version 1 state file,
// written before sources, less the engine's fields, so such a file is
// still this source's State.
type State struct {
	Traces   []TraceState   `json:"traces"`
	Messages []MessageState `json:"messages"`
	Filters  []FilterState  `json:"filters,omitempty"`
	// PendingLinks maps "host\x00queue id" of a hop announced before its
	// first line to the queue id of the hop that announced it.
	PendingLinks map[string]string `json:"pendingLinks,omitempty"`
	// Evicted are the compact records of messages evicted over the cap on
	// messages in flight (source.Config.MaxInFlight), oldest first (at
	// most source.Config.MaxEvicted of them, about 100 bytes each).
	Evicted []EvictedState `json:"evicted,omitempty"`
}

// EvictedState is the compact record of an evicted message.
type EvictedState struct {
	Key        uint64                     `json:"key"` // keyHash of host and queue id
	TraceID    string                     `json:"traceId"`
	Flags      uint8                      `json:"flags,omitempty"`
	First      int64                      `json:"first"` // unix nanoseconds
	RemovedAt  int64                      `json:"removedAt,omitempty"`
	Recipients map[string]mailflow.Status `json:"recipients,omitempty"`
	// Done: the rcptHash of each recipient with a final status, of a
	// removed message (not in Recipients)
	Done         []uint64          `json:"done,omitempty"`
	ExpandedFrom map[string]string `json:"expandedFrom,omitempty"`
	Resolved     map[string]string `json:"resolved,omitempty"`
	Verdicts     []string          `json:"verdicts,omitempty"`
}

// TraceState is one message (trace) in flight.
type TraceState struct {
	ID           string            `json:"id"`
	Host         string            `json:"host"`
	Received     time.Time         `json:"received"`
	Sender       string            `json:"sender,omitempty"`
	SenderKnown  bool              `json:"senderKnown,omitempty"`
	MessageID    string            `json:"messageId,omitempty"`
	Subject      string            `json:"subject,omitempty"`
	Size         int64             `json:"size,omitempty"`
	OrigClientIP string            `json:"origClientIp,omitempty"`
	FromIP       string            `json:"fromIp,omitempty"`
	ClientName   string            `json:"clientName,omitempty"`
	Local        bool              `json:"local,omitempty"`
	SASL         string            `json:"sasl,omitempty"`
	Recipients   []string          `json:"recipients,omitempty"`
	ExpandedFrom map[string]string `json:"expandedFrom,omitempty"`
	// Resolved maps an address to the original recipient it stands for
	// (a single-address alias or redirect).
	Resolved map[string]string `json:"resolved,omitempty"`
	Verdicts []string          `json:"verdicts,omitempty"`
	// of a trace made whole again after an eviction: what decides its
	// direction beside Recipients and the sender
	Org        bool `json:"org,omitempty"`
	AnyInside  bool `json:"anyInside,omitempty"`
	AnyOutside bool `json:"anyOutside,omitempty"`
	// From is where its first hop came from: 1 outside, 2 inside (0
	// unknown: its receipt was not read).
	From uint8 `json:"from,omitempty"`
}

// MessageState is one queue id lifecycle (hop) in flight.
type MessageState struct {
	Host        string                     `json:"host"`
	QueueID     string                     `json:"queueId"`
	First       time.Time                  `json:"first"`
	Last        time.Time                  `json:"last"`
	Start       time.Time                  `json:"start"`
	Started     bool                       `json:"started,omitempty"`
	TraceID     string                     `json:"traceId,omitempty"` // empty while held
	Held        []mailflow.Event           `json:"held,omitempty"`
	Linked      bool                       `json:"linked,omitempty"`
	PendingRoot bool                       `json:"pendingRoot,omitempty"`
	WaitingFor  string                     `json:"waitingFor,omitempty"` // queue id of a held parent
	NoticeOf    string                     `json:"noticeOf,omitempty"`
	Removed     bool                       `json:"removed,omitempty"`
	RemovedAt   time.Time                  `json:"removedAt,omitzero"`
	Submitted   bool                       `json:"submitted,omitempty"`
	Recipients  map[string]mailflow.Status `json:"recipients,omitempty"`
	Verdicts    []string                   `json:"verdicts,omitempty"`
	Expanded    map[string]string          `json:"expanded,omitempty"`
	Resolved    map[string]string          `json:"resolved,omitempty"`
	Expansions  map[string]ExpansionState  `json:"expansions,omitempty"`
	NRcpt       int                        `json:"nrcpt,omitempty"`
	Aged        bool                       `json:"aged,omitempty"`
	// Done: recipients with a final status known by their hash only (a
	// removed message made whole again from its record)
	Done        []uint64 `json:"done,omitempty"`
	ClientName  string   `json:"clientName,omitempty"`
	ClientIP    string   `json:"clientIp,omitempty"`
	OrigIP      string   `json:"origIp,omitempty"`
	SASL        string   `json:"sasl,omitempty"`
	Loopback    bool     `json:"loopback,omitempty"`
	Sender      string   `json:"sender,omitempty"`
	SenderKnown bool     `json:"senderKnown,omitempty"`
	MessageID   string   `json:"messageId,omitempty"`
	Size        int64    `json:"size,omitempty"`
	Subject     string   `json:"subject,omitempty"`

	// Awaiting are a content filter's refusing replies held for its
	// verdict (filterReply), by recipient.
	Awaiting map[string]HeldReplyState `json:"awaiting,omitempty"`
}

// ExpansionState is what an original recipient of a hop became (expand.go).
type ExpansionState struct {
	First   time.Time        `json:"first"`
	Targets []string         `json:"targets"`
	Held    []mailflow.Event `json:"held,omitempty"`
	Emitted []mailflow.Event `json:"emitted,omitempty"`
	Local   bool             `json:"local,omitempty"`
	Settled bool             `json:"settled,omitempty"`
	Group   bool             `json:"group,omitempty"`
	OwnCopy bool             `json:"ownCopy,omitempty"`
}

// HeldReplyState is a content filter's refusing reply held for its verdict.
type HeldReplyState struct {
	Orig     string         `json:"orig,omitempty"`
	Daemon   string         `json:"daemon,omitempty"`
	At       time.Time      `json:"at"`
	Refusal  mailflow.Event `json:"refusal"`
	HandOver mailflow.Event `json:"handOver"`
}

// FilterState is a content filter run not yet claimed by its first hop.
type FilterState struct {
	Host      string           `json:"host"`
	ID        string           `json:"id"`
	First     time.Time        `json:"first"`
	MessageID string           `json:"messageId,omitempty"`
	Verdicts  []mailflow.Event `json:"verdicts,omitempty"`
	Children  []string         `json:"children,omitempty"` // queue ids
	TraceID   string           `json:"traceId,omitempty"`
}

func keys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// State returns a snapshot of the messages in flight as JSON (the engine
// calls it between lines, after the emitted events have been stored).
func (c *Source) State() (json.RawMessage, error) {
	return json.Marshal(c.state())
}

func (c *Source) state() State {
	st := State{PendingLinks: map[string]string{}}
	traces := map[*trace]bool{}
	for _, m := range c.sortedMsgs(func(*message) bool { return true }) {
		ms := MessageState{ //nolint:dupl // restore maps the fields back, the other way
			Host: m.host, QueueID: m.qid, First: m.first, Last: m.last, Start: m.start, Started: m.started,
			Held: m.held, Linked: m.linked, PendingRoot: m.pendingRoot, NoticeOf: m.noticeOf, Removed: m.removed, RemovedAt: m.removedAt,
			Submitted: m.submitted, Recipients: m.rcpt, Verdicts: keys(m.verdict), Expanded: m.expanded,
			ClientName: m.clientName, ClientIP: m.clientIP, OrigIP: m.origIP, SASL: m.sasl, Loopback: m.loopback,
			Sender: m.sender, SenderKnown: m.senderKnown, MessageID: m.messageID, Size: m.size, Subject: m.subject,
		}
		ms.Resolved, ms.NRcpt, ms.Aged, ms.Done = m.resolved, m.nrcpt, m.aged, m.done
		for orig, x := range m.exps {
			if ms.Expansions == nil {
				ms.Expansions = map[string]ExpansionState{}
			}
			ms.Expansions[orig] = ExpansionState{First: x.first, Targets: x.targets, Held: x.held, Emitted: x.emitted,
				Local: x.local, Settled: x.settled, Group: x.group, OwnCopy: x.ownCopy}
		}
		for rc, h := range m.awaiting {
			if ms.Awaiting == nil {
				ms.Awaiting = map[string]HeldReplyState{}
			}
			ms.Awaiting[rc] = HeldReplyState{Orig: h.orig, Daemon: h.daemon, At: h.at, Refusal: h.refusal, HandOver: h.handOver}
		}
		if m.tr != nil {
			ms.TraceID = m.tr.id
			traces[m.tr] = true
		}
		st.Messages = append(st.Messages, ms)
	}
	// children waiting for a held parent
	idx := map[string]int{}
	for i, ms := range st.Messages {
		idx[ms.Host+"\x00"+ms.QueueID] = i
	}
	for _, m := range c.msgs {
		for _, ch := range m.waiting {
			if i, ok := idx[ch.host+"\x00"+ch.qid]; ok {
				st.Messages[i].WaitingFor = m.qid
			}
		}
	}
	for _, f := range c.sortedFilters(func(*filterRec) bool { return true }) {
		fs := FilterState{Host: f.host, ID: f.id, First: f.first, MessageID: f.messageID, Verdicts: f.verdicts}
		for _, ch := range f.children {
			fs.Children = append(fs.Children, ch.qid)
		}
		if f.emittedFor != nil {
			fs.TraceID = f.emittedFor.id
			traces[f.emittedFor] = true
		}
		st.Filters = append(st.Filters, fs)
	}
	for k, p := range c.pendingLinks {
		st.PendingLinks[k] = p.qid
	}
	for tr := range traces {
		st.Traces = append(st.Traces, TraceState{
			ID: tr.id, Host: tr.host, Received: tr.received, Sender: tr.sender, SenderKnown: tr.senderKnown,
			MessageID: tr.messageID, Subject: tr.subject, Size: tr.size, OrigClientIP: tr.origClientIP,
			FromIP: tr.fromIP, ClientName: tr.clientName, Local: tr.local, SASL: tr.sasl,
			Recipients: keys(tr.rcpts), ExpandedFrom: tr.expandedFrom, Resolved: tr.resolved, Verdicts: keys(tr.verdict),
			Org: tr.org, AnyInside: tr.anyIn, AnyOutside: tr.anyOut, From: uint8(tr.from),
		})
	}
	sort.Slice(st.Traces, func(i, j int) bool { return st.Traces[i].ID < st.Traces[j].ID })
	st.Evicted = c.evictedState()
	return st
}

// evictedState returns the compact records, oldest first.
func (c *Source) evictedState() []EvictedState {
	var out []EvictedState
	for key, r := range c.evRing.All() {
		es := EvictedState{Key: key, TraceID: r.traceID(), Flags: r.flags, First: r.first, RemovedAt: r.removedAt(), Done: r.done()}
		if r.more != nil {
			es.Recipients, es.ExpandedFrom, es.Verdicts, es.Resolved = r.more.rcpt, r.more.expandedFrom, r.more.verdicts, r.more.resolved
		}
		out = append(out, es)
	}
	return out
}

func set(ks []string) map[string]bool {
	m := map[string]bool{}
	for _, k := range ks {
		m[k] = true
	}
	return m
}

// Restore loads a snapshot (State's JSON) into a source that has read
// nothing yet.
func (c *Source) Restore(b json.RawMessage) error {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return errors.New("ingest: postfix state: " + err.Error())
	}
	if len(c.msgs) != 0 {
		return errors.New("ingest: Restore on a postfix source that has read lines")
	}
	return c.restore(st)
}

func (c *Source) restore(st State) error {
	traces := map[string]*trace{}
	for _, ts := range st.Traces {
		tr := newTrace(ts.ID, ts.Host)
		tr.received, tr.sender, tr.senderKnown, tr.messageID, tr.subject = ts.Received, ts.Sender, ts.SenderKnown, ts.MessageID, ts.Subject
		tr.size, tr.origClientIP, tr.fromIP, tr.clientName, tr.local, tr.sasl = ts.Size, ts.OrigClientIP, ts.FromIP, ts.ClientName, ts.Local, ts.SASL
		tr.rcpts, tr.verdict = set(ts.Recipients), set(ts.Verdicts)
		tr.org, tr.anyIn, tr.anyOut, tr.from = ts.Org, ts.AnyInside, ts.AnyOutside, origin(ts.From)
		tr.counted = true
		if ts.ExpandedFrom != nil {
			tr.expandedFrom = ts.ExpandedFrom
		}
		if ts.Resolved != nil {
			tr.resolved = ts.Resolved
		}
		traces[ts.ID] = tr
	}
	for _, ms := range st.Messages {
		m := &message{ //nolint:dupl // State maps the fields out, the other way
			host: ms.Host, qid: ms.QueueID, first: ms.First, last: ms.Last, start: ms.Start, started: ms.Started,
			held: ms.Held, linked: ms.Linked, pendingRoot: ms.PendingRoot, noticeOf: ms.NoticeOf, removed: ms.Removed, removedAt: ms.RemovedAt,
			submitted: ms.Submitted, rcpt: ms.Recipients, verdict: set(ms.Verdicts), expanded: ms.Expanded,
			clientName: ms.ClientName, clientIP: ms.ClientIP, origIP: ms.OrigIP, sasl: ms.SASL, loopback: ms.Loopback,
			sender: ms.Sender, senderKnown: ms.SenderKnown, messageID: ms.MessageID, size: ms.Size, subject: ms.Subject,
		}
		m.resolved, m.nrcpt, m.aged, m.done = ms.Resolved, ms.NRcpt, ms.Aged, ms.Done
		for orig, xs := range ms.Expansions {
			if m.exps == nil {
				m.exps = map[string]*expansion{}
			}
			m.exps[orig] = &expansion{first: xs.First, targets: xs.Targets, held: xs.Held, emitted: xs.Emitted,
				local: xs.Local, settled: xs.Settled, group: xs.Group, ownCopy: xs.OwnCopy}
		}
		for rc, hs := range ms.Awaiting {
			if m.awaiting == nil {
				m.awaiting = map[string]*heldReply{}
			}
			m.awaiting[rc] = &heldReply{orig: hs.Orig, daemon: hs.Daemon, at: hs.At, refusal: hs.Refusal, handOver: hs.HandOver}
		}
		if len(m.awaiting) > 0 {
			c.nAwaiting++
		}
		if ms.TraceID != "" {
			m.tr = traces[ms.TraceID]
			if m.tr == nil {
				return errors.New("ingest: state: message " + ms.QueueID + " names an unknown trace")
			}
		}
		c.msgs[m.host+"\x00"+m.qid] = m
		c.inFlight.Touch(&m.lru, m)
	}
	for _, ms := range st.Messages {
		if ms.WaitingFor == "" {
			continue
		}
		p := c.msgs[ms.Host+"\x00"+ms.WaitingFor]
		if p == nil {
			return errors.New("ingest: state: " + ms.QueueID + " waits for an unknown message")
		}
		ch := c.msgs[ms.Host+"\x00"+ms.QueueID]
		p.waiting = append(p.waiting, ch)
		ch.waitFor = p
	}
	for _, fs := range st.Filters {
		f := &filterRec{host: fs.Host, id: fs.ID, first: fs.First, messageID: fs.MessageID, verdicts: fs.Verdicts, rcptSeen: map[string]bool{}}
		for _, q := range fs.Children {
			if ch := c.msgs[fs.Host+"\x00"+q]; ch != nil {
				f.children = append(f.children, ch)
			}
		}
		if fs.TraceID != "" {
			f.emittedFor = traces[fs.TraceID]
		}
		c.filters[fs.Host+"\x00"+fs.ID] = f
	}
	for k, q := range st.PendingLinks {
		host := k
		for i := 0; i < len(k); i++ {
			if k[i] == 0 {
				host = k[:i]
				break
			}
		}
		if p := c.msgs[host+"\x00"+q]; p != nil {
			c.pendingLinks[k] = p
		}
	}
	for _, es := range st.Evicted {
		if c.cfg.MaxEvicted <= 0 || es.Key == 0 {
			break
		}
		r := evicted{flags: es.Flags, first: es.First}
		r.setRemoval(es.RemovedAt, es.Done)
		more := evictedMore{rcpt: es.Recipients, expandedFrom: es.ExpandedFrom, resolved: es.Resolved, verdicts: es.Verdicts}
		if id, ok := source.PackTraceID(es.TraceID); ok {
			r.id = id
		} else {
			more.id = es.TraceID
		}
		if more.id != "" || more.rcpt != nil || more.expandedFrom != nil || more.resolved != nil || more.verdicts != nil {
			r.more = &more
		}
		c.remember(es.Key, r)
	}
	return nil
}
