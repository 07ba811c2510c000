package source

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/dchest/siphash"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Links is how a line of one source finds the message another source
// traces: a mailbox server's line (Dovecot) the MTA's delivery it belongs
// to, a spam filter's verdict (rspamd) the message it scanned. The engine
// fills it from the events every source emits (Note), so a source that
// emits nothing new for it needs no change; a source that joins lines to
// another's messages looks them up here, and is told (Waiter) when events
// were emitted, since what it waits for may have come.
//
// It keeps, for a while (Config.ForgetAfter, and at most maxLinks keys in
// each of its two generations), the trace of
//   - a Message-ID (the latest message that carried it),
//   - a Message-ID and one of its recipients (the latest message that
//     decided that recipient's status),
//   - an LMTP session id, as Dovecot echoes it in its 250 reply to a
//     delivery ("250 2.0.0 <rcpt> Y6a3EvpUt2l+eyIAYRBqSw Saved"), with its
//     recipient and the delivery's time.
//
// and asks the sources for a queue id (TraceID).
type Links struct {
	cur, old linkGen
	rotated  time.Time
	// last: the Message-ID and trace of the latest event noted, so that a
	// message's events (each carries its Message-ID) are indexed once
	lastMsgID, lastTrace string
	// traceID asks the sources for the trace of a queue id on a host;
	// recipients tells them what a joining line names (Recipients)
	traceID    func(host, id string) string
	recipients func(host, id, messageID string, rcpts []string)
	notes      int // events noted since the last Waiter call
	// seed keys linkHash: drawn at random for a new index and saved with
	// its state, so that a sender cannot craft a Message-ID whose key
	// collides with another message's
	seed [2]uint64
	buf  []byte // linkHash's input, reused
}

// Link is a trace found for a key.
type Link struct {
	TraceID string `json:"t"`
	// Recipient: for a session id, the recipient of the delivery.
	Recipient string `json:"r,omitempty"`
	// Time of the event that made the link (the MTA's delivery, for a
	// session id).
	Time time.Time `json:"at"`
}

// maxLinks bounds each generation of Links.
const maxLinks = 1 << 17

// linkGen is a generation of the index: links by the linkHash of their
// key, and beside them what does not fit a linkVal.
type linkGen struct {
	vals  map[uint64]linkVal
	other map[uint64]linkOther // of the vals flagged linkHasOther
}

func newLinkGen(n int) linkGen {
	return linkGen{vals: make(map[uint64]linkVal, n), other: map[uint64]linkOther{}}
}

func (g linkGen) put(h uint64, lv linkVal, o *linkOther) {
	g.vals[h] = lv
	if o != nil {
		g.other[h] = *o
	} else if len(g.other) > 0 {
		delete(g.other, h)
	}
}

func (g linkGen) get(h uint64, keyRcpt string) (Link, bool) {
	lv, ok := g.vals[h]
	if !ok {
		return Link{}, false
	}
	var o *linkOther
	if lv.flags&linkHasOther != 0 {
		x := g.other[h]
		o = &x
	}
	return lv.link(keyRcpt, o), true
}

// linkVal is a Link as the index keeps it: 32 bytes with its key in the
// map, and no pointer: none into the event (whose strings point into a
// log line: a kept Message-ID would keep its whole line), none at all for
// a trace ID of 20 hex digits and a recipient that is the key's, the
// usual link; the others' strings are copies, in the generation's other.
type linkVal struct {
	at    int64    // the event's time, unix nanoseconds
	id    [10]byte // the trace ID, when it is 20 lower-case hex digits
	flags uint8
}

// Flags of a linkVal.
const (
	linkHexID    uint8 = 1 << iota // the trace ID is id
	linkRcptKey                    // the recipient is the key's (as looked up: normalized)
	linkHasOther                   // the generation's other holds the rest
)

// linkOther is what does not fit a linkVal: a trace ID of another shape,
// a recipient that is not the key's.
type linkOther struct{ traceID, recipient string }

// makeVal makes the linkVal of v, a link under a key whose recipient is
// keyRcpt, and what does not fit it (nil: nothing).
func makeVal(v Link, keyRcpt string) (linkVal, *linkOther) {
	var lv linkVal
	if !v.Time.IsZero() {
		lv.at = v.Time.UnixNano()
	}
	var o linkOther
	if id, ok := PackTraceID(v.TraceID); ok {
		lv.id = id
		lv.flags |= linkHexID
	} else {
		o.traceID = strings.Clone(v.TraceID)
	}
	if v.Recipient != "" {
		if v.Recipient == keyRcpt {
			lv.flags |= linkRcptKey
		} else {
			o.recipient = strings.Clone(v.Recipient)
		}
	}
	if o == (linkOther{}) {
		return lv, nil
	}
	lv.flags |= linkHasOther
	return lv, &o
}

// link returns the Link of lv (and o, what did not fit it), found under a
// key whose recipient is keyRcpt.
func (lv linkVal) link(keyRcpt string, o *linkOther) Link {
	var v Link
	if lv.at != 0 {
		v.Time = time.Unix(0, lv.at).UTC()
	}
	if lv.flags&linkHexID != 0 {
		v.TraceID = hex.EncodeToString(lv.id[:])
	}
	if lv.flags&linkRcptKey != 0 {
		v.Recipient = keyRcpt
	}
	if o != nil {
		if o.traceID != "" {
			v.TraceID = o.traceID
		}
		if o.recipient != "" {
			v.Recipient = o.recipient
		}
	}
	return v
}

// NewLinks returns an empty index; traceID answers a queue id on a host
// (the engine's Correlator.TraceID), recipients hands on what Recipients
// is told (to the sources that are a RecipientTaker); either may be nil.
func NewLinks(traceID func(host, id string) string, recipients func(host, id, messageID string, rcpts []string)) *Links {
	return &Links{cur: newLinkGen(0), old: newLinkGen(0), traceID: traceID, recipients: recipients, seed: newSeed()}
}

// newSeed draws a key for linkHash.
func newSeed() [2]uint64 {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return [2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

// linkKey is a key of the index: a struct, so that noting an event
// builds no string. The index keeps its linkHash.
type linkKey struct {
	kind uint8  // keyMsgID, keySession
	id   string // the Message-ID (normalized) or the session id
	rcpt string // the recipient, or ""
}

// linkHash is SipHash-2-4, keyed by the index's seed, of a key's kind,
// id, a zero byte and recipient: the index keeps no string of the key. A
// Message-ID and a recipient are the sender's to choose, and a plain hash
// (FNV) lets one craft a key that collides with another message's, whose
// trace the crafted message's lines would then join; SipHash is the keyed
// hash made against that (hash flooding), and with a secret seed two keys
// of one hash stay an accident of 1 in 2^64 per pair.
func (l *Links) linkHash(k linkKey) uint64 {
	b := append(l.buf[:0], k.kind)
	b = append(b, k.id...)
	b = append(b, 0)
	b = append(b, k.rcpt...)
	l.buf = b
	return siphash.Hash(l.seed[0], l.seed[1], b)
}

// Kinds of keys.
const (
	keyMsgID uint8 = iota + 1
	keySession
)

// Note indexes an emitted event (the engine calls it for every event).
func (l *Links) Note(e *mailflow.Event) {
	l.notes++
	if e.MessageID == "" {
		return
	}
	if e.MessageID != l.lastMsgID || e.MessageTraceID != l.lastTrace {
		l.lastMsgID, l.lastTrace = e.MessageID, e.MessageTraceID
		l.put(linkKey{keyMsgID, mailflow.NormalizeMessageID(e.MessageID), ""}, Link{TraceID: e.MessageTraceID, Time: e.Time})
	}
	if e.Recipient == "" {
		return
	}
	if _, ok := mailflow.StatusOf(e.Type); !ok {
		return
	}
	l.put(linkKey{keyMsgID, mailflow.NormalizeMessageID(e.MessageID), e.Recipient}, Link{TraceID: e.MessageTraceID, Recipient: e.Recipient, Time: e.Time})
	if e.Type == mailflow.EventDeliver {
		if sid := LMTPSession(e.SMTPResponse); sid != "" {
			// one LMTP transaction may carry several recipients under one
			// session id: keyed with the recipient too
			v := Link{TraceID: e.MessageTraceID, Recipient: e.Recipient, Time: e.Time}
			l.put(linkKey{keySession, sid, ""}, v)
			l.put(linkKey{keySession, sid, e.Recipient}, v)
		}
	}
}

// Noted reports whether events were noted since the last call (the
// engine then tells the Waiters).
func (l *Links) Noted() bool {
	n := l.notes
	l.notes = 0
	return n > 0
}

func (l *Links) put(k linkKey, v Link) {
	if len(l.cur.vals) >= maxLinks {
		l.rotate(v.Time)
	}
	lv, o := makeVal(v, k.rcpt)
	l.cur.put(l.linkHash(k), lv, o)
}

func (l *Links) get(k linkKey) (Link, bool) {
	h := l.linkHash(k)
	if v, ok := l.cur.get(h, k.rcpt); ok {
		return v, true
	}
	return l.old.get(h, k.rcpt)
}

// Forget drops the links older than a generation of age (the engine calls
// it on each sweep).
func (l *Links) Forget(now time.Time, age time.Duration) {
	if l.rotated.IsZero() {
		l.rotated = now
	}
	// now.Sub(rotated) >= age, without Sub's hundred instructions (every
	// sweep)
	if !now.Before(l.rotated.Add(age)) {
		l.rotate(now)
	}
}

func (l *Links) rotate(now time.Time) {
	l.old, l.cur = l.cur, newLinkGen(len(l.cur.vals)/2)
	l.rotated = now
}

// Session returns the MTA's delivery that Dovecot's LMTP session id
// belongs to: with recipient (an address, as Dovecot names the user),
// the delivery to that recipient, which tells apart the recipients of one
// LMTP transaction; else the latest delivery of the session.
func (l *Links) Session(sid, recipient string) (Link, bool) {
	if strings.IndexByte(recipient, '@') > 0 {
		if v, ok := l.get(linkKey{keySession, sid, mailflow.NormalizeAddress(recipient)}); ok {
			return v, true
		}
	}
	return l.get(linkKey{keySession, sid, ""})
}

// MessageID returns the latest message that carried a Message-ID (with
// recipient set: that decided the status of that recipient).
func (l *Links) MessageID(messageID, recipient string) (Link, bool) {
	return l.get(linkKey{keyMsgID, mailflow.NormalizeMessageID(messageID), mailflow.NormalizeAddress(recipient)})
}

// QueueID returns the trace of the message a source knows as queue id on
// host, or "". A message read from a log that names no host (a log file
// shipped without a syslog header: Exim's own, known by its shape) is
// found by the id alone: rspamd's verdict, from the mail server's syslog,
// names the host, Exim's line of the same message does not.
func (l *Links) QueueID(host, id string) string {
	if l.traceID == nil || id == "" {
		return ""
	}
	t := l.traceID(host, id)
	if t == "" && host != "" {
		t = l.traceID("", id)
	}
	return t
}

// Recipients tells the source that knows the message id on host (or on no
// host, as QueueID) the Message-ID and the envelope recipients a joining
// line names: rspamd's verdict names those the MTA passed it (id:,
// rcpts:), which Exim's reject after DATA does not (RecipientTaker).
func (l *Links) Recipients(host, id, messageID string, rcpts []string) {
	if l == nil || l.recipients == nil || id == "" || (len(rcpts) == 0 && messageID == "") {
		return
	}
	l.recipients(host, id, messageID, rcpts)
}

// LMTPSession returns the session id in Dovecot's LMTP reply to a
// delivery, "250 2.0.0 <rcpt> SESSIONID Saved", or "".
func LMTPSession(reply string) string {
	if !strings.HasPrefix(reply, "250 ") {
		return ""
	}
	i := strings.IndexByte(reply, '>')
	if i < 0 || !strings.Contains(reply[:i], "<") {
		return ""
	}
	rest := strings.TrimLeft(reply[i+1:], " ")
	sid, tail, ok := strings.Cut(rest, " ")
	if !ok || !strings.HasPrefix(tail, "Saved") || len(sid) < 8 || len(sid) > 64 {
		return ""
	}
	return sid
}

// linksState is Links as JSON: its two generations as lists.
type linksState struct {
	// Seed: the key of the hashes of Cur's and Old's entries
	Seed    *[2]uint64  `json:"seed,omitempty"`
	Rotated time.Time   `json:"rotated,omitzero"`
	Cur     []linkEntry `json:"cur,omitempty"`
	Old     []linkEntry `json:"old,omitempty"`
}

// linkEntry is a link by the hash of its key (Key), or, as a state saved
// before the index kept hashes has it, by the key itself (Kind, ID, Rcpt).
// RcptKey: the link's recipient is the key's, whatever it is.
type linkEntry struct {
	Key     uint64 `json:"h,omitempty"`
	Kind    uint8  `json:"k,omitempty"`
	ID      string `json:"id,omitempty"`
	Rcpt    string `json:"rcpt,omitempty"`
	RcptKey bool   `json:"rk,omitempty"`
	Link
}

func entries(g linkGen) []linkEntry {
	out := make([]linkEntry, 0, len(g.vals))
	for k, v := range g.vals {
		e := linkEntry{Key: k, RcptKey: v.flags&linkRcptKey != 0}
		e.Link, _ = g.get(k, "")
		out = append(out, e)
	}
	return out
}

// fromEntries makes a generation of es, whose hashes are keyed by
// l.seed (hashed is false when the state had no seed: its hashes were
// not keyed, and only entries saved by their key are kept).
func (l *Links) fromEntries(es []linkEntry, hashed bool) linkGen {
	g := newLinkGen(len(es))
	for _, e := range es {
		if e.Key == 0 {
			k := linkKey{e.Kind, e.ID, e.Rcpt}
			lv, o := makeVal(e.Link, k.rcpt)
			g.put(l.linkHash(k), lv, o)
			continue
		}
		if !hashed {
			continue
		}
		lv, o := makeVal(e.Link, "")
		if e.RcptKey {
			lv.flags |= linkRcptKey
		}
		g.put(e.Key, lv, o)
	}
	return g
}

// MarshalJSON saves the index (part of the engine's state).
func (l *Links) MarshalJSON() ([]byte, error) {
	return json.Marshal(linksState{Seed: &l.seed, Rotated: l.rotated, Cur: entries(l.cur), Old: entries(l.old)})
}

// UnmarshalJSON restores an index saved by MarshalJSON.
func (l *Links) UnmarshalJSON(b []byte) error {
	var s linksState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s.Seed != nil {
		l.seed = *s.Seed
	} else if l.seed == ([2]uint64{}) {
		l.seed = newSeed()
	}
	l.rotated = s.Rotated
	l.cur, l.old = l.fromEntries(s.Cur, s.Seed != nil), l.fromEntries(s.Old, s.Seed != nil)
	return nil
}

// RecipientTaker is a source that takes the Message-ID and the envelope
// recipients another source's line names (Links.Recipients) for a message
// it knows as id on host (or on no host: its own log file's) whose own
// lines name neither: the Exim source gives a message refused after DATA
// its Message-ID and a row per recipient. It ignores a message it does not
// know or whose recipients it knows.
type RecipientTaker interface {
	TakeRecipients(host, id, messageID string, rcpts []string)
}

// Waiter is a source whose lines may wait for another source's message
// (through Links): the engine calls Linked after a line whose events were
// noted, and the source emits what now finds its message.
type Waiter interface {
	Linked()
}
