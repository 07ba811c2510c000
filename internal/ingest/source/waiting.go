package source

import (
	"encoding/json"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Waited is what a line of a joining source (a spam filter's verdict, a
// mailbox server's delivery) says of a message another source traces:
// its events, without their trace, and the keys that find that message
// in Links. A line that finds its message at once is emitted at once;
// one that does not waits in Waiting (its message's lines may come
// later: Dovecot logs the save before the MTA logs the 250 reply), at
// most Config.LinkWait, then becomes a message of its own.
type Waited struct {
	// Source names the source (a part of an own message's trace ID).
	Source string `json:"source"`
	Host   string `json:"host"`
	// Time of the line; Since, when it began to wait.
	Time  time.Time `json:"time"`
	Since time.Time `json:"since"`
	// The keys, most precise first: Dovecot's LMTP session id, the MTA's
	// queue id (on Host), the Message-ID with the recipient, the
	// Message-ID alone.
	Session   string `json:"session,omitempty"`
	QueueID   string `json:"queueId,omitempty"`
	MessageID string `json:"messageId,omitempty"`
	Recipient string `json:"recipient,omitempty"`
	// NotBefore: the events of a mailbox server's line are dated no
	// earlier than the MTA's delivery they join, so that what the mailbox
	// server did (a Sieve discard) decides the recipient's status over
	// the MTA's 250, which it logged first.
	NotBefore bool `json:"notBefore,omitempty"`
	// Events of the line (recipient-level ones for Recipient, whom the
	// join may name better: Dovecot's user "bob" is the MTA's
	// bob@example.com).
	Events []mailflow.Event `json:"events"`
	// Rcpts are the envelope recipients the line names (rspamd's rcpts:),
	// told with MessageID to the source of the message it joins by
	// QueueID (Links.Recipients), for a message whose own lines name
	// neither.
	Rcpts []string `json:"rcpts,omitempty"`
}

// skew is how much earlier than a line the event that links a Message-ID
// to a message may be, and still be taken as that line's message (the
// MTA logs the Message-ID before a filter scans it; an older message with
// the same Message-ID is another).
const skew = 10 * time.Minute

// find looks for w's message; final: the last try, before w becomes a
// message of its own, when a Message-ID alone is taken whatever its age.
func (l *Links) find(w *Waited, final bool) (Link, bool) {
	if w.Session != "" {
		if v, ok := l.Session(w.Session, w.Recipient); ok {
			return v, true
		}
	}
	if w.QueueID != "" {
		if t := l.QueueID(w.Host, w.QueueID); t != "" {
			return Link{TraceID: t}, true
		}
	}
	if w.MessageID == "" {
		return Link{}, false
	}
	recent := func(v Link) bool { return final || !v.Time.Before(w.Time.Add(-skew)) }
	if w.Recipient != "" {
		// the MTA's outcome for this recipient: logged after the mailbox
		// server's line (or a little before, from another host's clock)
		if v, ok := l.MessageID(w.MessageID, w.Recipient); ok && (final || !v.Time.Before(w.Time.Add(-time.Minute))) {
			return v, true
		}
	}
	// a Message-ID alone: only once no better key can come (a session id
	// or a recipient's outcome would name the right one of several
	// messages with one Message-ID), or for a line that has no other key
	if final || (w.Session == "" && w.Recipient == "") {
		if v, ok := l.MessageID(w.MessageID, ""); ok && recent(v) {
			return v, true
		}
	}
	return Link{}, false
}

// Waiting is a joining source's lines that wait for their message.
type Waiting struct {
	env   *Env
	cfg   Config
	items []*Waited
}

// NewWaiting returns the waiting lines of a source that emits into env.
func NewWaiting(cfg Config, env *Env) *Waiting { return &Waiting{env: env, cfg: cfg} }

// Add emits w's events under its message's trace when Links knows it,
// else keeps them waiting.
func (q *Waiting) Add(w *Waited) {
	if v, ok := q.env.Links.find(w, false); ok {
		q.emit(w, v)
		return
	}
	w.Since = q.env.Now
	q.items = append(q.items, w)
}

// Len is how many lines wait.
func (q *Waiting) Len() int { return len(q.items) }

// Retry emits the waiting lines whose message is now known (call it from
// Waiter.Linked).
func (q *Waiting) Retry() {
	if len(q.items) == 0 {
		return
	}
	q.filter(func(w *Waited) bool {
		v, ok := q.env.Links.find(w, false)
		if ok {
			q.emit(w, v)
		}
		return ok
	})
}

// Sweep makes the lines that waited longer than Config.LinkWait messages
// of their own (joined by a Message-ID alone when that is all there is).
func (q *Waiting) Sweep() {
	if len(q.items) == 0 {
		return // (every 10 s of log time)
	}
	q.filter(func(w *Waited) bool {
		if q.env.Now.Sub(w.Since) <= q.cfg.LinkWait {
			return false
		}
		q.release(w)
		return true
	})
}

// Flush releases every waiting line (the end of a file).
func (q *Waiting) Flush() {
	q.filter(func(w *Waited) bool { q.release(w); return true })
}

func (q *Waiting) release(w *Waited) {
	if v, ok := q.env.Links.find(w, true); ok {
		q.emit(w, v)
		return
	}
	key := w.Session + "\x00" + w.QueueID + "\x00" + w.MessageID + "\x00" + w.Recipient
	id := Digest(w.Source, w.Host, key, w.Time.UTC().Format(time.RFC3339Nano))
	for _, e := range w.Events {
		e.MessageTraceID = id
		e.MessageID = w.MessageID
		q.env.Emit(e)
	}
	q.env.Stats.Messages++
}

func (q *Waiting) filter(done func(*Waited) bool) {
	kept := q.items[:0]
	for _, w := range q.items {
		if !done(w) {
			kept = append(kept, w)
		}
	}
	for i := len(kept); i < len(q.items); i++ {
		q.items[i] = nil
	}
	q.items = kept
}

func (q *Waiting) emit(w *Waited, v Link) {
	for _, e := range w.Events {
		e.MessageTraceID = v.TraceID
		if e.Recipient != "" && v.Recipient != "" {
			e.Recipient = v.Recipient
		}
		if w.NotBefore && e.Time.Before(v.Time) {
			e.Time = v.Time
		}
		q.env.Emit(e)
	}
	q.env.Links.Recipients(w.Host, w.QueueID, w.MessageID, w.Rcpts)
}

// State returns the waiting lines as JSON.
func (q *Waiting) State() (json.RawMessage, error) {
	if len(q.items) == 0 {
		return json.RawMessage("[]"), nil
	}
	return json.Marshal(q.items)
}

// Restore loads lines saved by State.
func (q *Waiting) Restore(b json.RawMessage) error {
	var items []*Waited
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	q.items = items
	return nil
}
