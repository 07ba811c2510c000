// Package source is the seam between the ingest engine and the sources
// that understand the log lines of one kind of mail software.
//
// The engine (package ingest) reads lines (files, the syslog wire, HTTP),
// splits their syslog header (package syslog), keeps the clock (log time),
// counts what it read and hands the events on to the store. A source (a
// package under source/, such as source/postfix) claims the lines of its
// programs and turns them into store.Events: the same events, whatever the
// software, so a trace looks the same to the store and to its readers. A
// second MTA (Exim, OpenSMTPD), a spam filter (rspamd) or a mailbox server
// (Dovecot) is a package of its own that implements Source, plus one line
// in the engine's registry (internal/ingest/sources.go).
//
// A line crosses the seam in two halves, which may run on two goroutines
// at once (the engine reads a file on three: reading, preparing,
// correlating): Prepare looks at one line alone and says what it is worth,
// ahead of Consume, which correlates the lines Prepare kept, in log order,
// with the source's state. Most lines of a mail server (connect, TLS,
// statistics) are worth nothing to a trace; Prepare saying so cheaply, by a
// few byte comparisons, is what keeps the engine fast.
package source

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Source reads the lines of one kind of mail software. Prepare may run
// concurrently with the other methods; they are called one at a time.
type Source interface {
	// Prepare reports whether a line is one of this source's, by its
	// syslog program ("postfix/smtpd") and message, and when it is, what
	// it is worth. It runs ahead of Consume, possibly on another
	// goroutine: it may read the source's configuration, never its state,
	// and keeps nothing of its arguments. It runs for every line read, so
	// it takes and returns plain values: a pointer handed through an
	// interface would put each line on the heap, and a whole syslog.Line
	// is copied through memory where two strings go in registers.
	Prepare(program, message string) (Verdict, bool)
	// Consume correlates a line Prepare claimed and did not Ignore (or
	// Ignored and Kept), in log order; it emits events through its Env and
	// counts the line there (Used, Ignored, or Skip with a reason).
	Consume(l *Line)
	// Sweep runs when the clock (Env.Now) has moved on by 10 seconds of log
	// time, or by Advance: release what waited too long for a link, forget
	// what is finished.
	Sweep()
	// Flush emits everything held, as a message of its own (the end of a
	// file, a shutdown without a saved state).
	Flush()
	// TraceID returns the trace ID of the message this source knows as id
	// on host (a Postfix queue id, say), or "".
	TraceID(host, id string) string
	// State returns what the source knows of messages in flight, as JSON,
	// for Restore in a later process; Restore loads it into a source that
	// has read nothing.
	State() (json.RawMessage, error)
	Restore(json.RawMessage) error
}

// Registration names a source and makes one.
type Registration struct {
	// Name keys the source's part of a saved state: never change it.
	Name string
	New  func(Config, *Env) Source
}

// Config is what every source is configured with.
type Config struct {
	// AcceptedDomains are the organisation's domains, lower-case;
	// "*.example.com" matches every subdomain of example.com. They decide a
	// message's Direction.
	AcceptedDomains []string
	// ContentFilters are the relays (as "ip:port") that are content
	// filters: a hand-over to one of them is not a delivery.
	ContentFilters []string
	// InternalNetworks are the networks whose SMTP clients are the
	// organisation's without authenticating (Postfix's mynetworks beyond
	// loopback): mail they hand over comes from inside. A client
	// elsewhere that does not authenticate comes from outside, whatever
	// sender it claims. They decide a message's Direction.
	InternalNetworks []netip.Prefix
	// PendingAfter: a message with no outcome this long (log time) after
	// it was received is Pending (still in the queue, or its outcome was
	// never logged), not GettingStatus for ever.
	PendingAfter time.Duration
	// LinkWait is how long (log time) a message that may be the later hop
	// of another waits for its link before it becomes a message of its
	// own.
	LinkWait time.Duration
	// ForgetAfter is how long (log time) a finished message is remembered,
	// for late lines.
	ForgetAfter time.Duration
	// MaxIdle forgets a message that has had no line for this long.
	MaxIdle time.Duration
	// MaxInFlight caps the messages a source keeps whole in memory: past
	// it, the least recently active is evicted (what it held emitted, as
	// the ageing sweep would) and only a compact record of it is kept, for
	// a late line to join the same trace; 0: no cap.
	MaxInFlight int
	// MaxEvicted caps those compact records: past it the oldest is
	// forgotten, and a line for it then starts a new trace.
	MaxEvicted int
}

// Verdict is what Prepare says of a line it claims.
type Verdict struct {
	// Daemon is the source's name for the line's program ("smtpd" for
	// "postfix/smtpd"): a substring of Program or a constant.
	Daemon string
	// Ignore: the line carries nothing for a trace (a connect, TLS,
	// statistics: most lines), and Consume does not see it...
	Ignore bool
	// ...unless Keep is set too: then Consume sees it with its Host, PID,
	// UTC and the Verdict only (the end of a session, say).
	Keep bool
	// Flags are the source's own marks for Consume.
	Flags uint8
}

// Line is a line on its way from Prepare to Consume.
type Line struct {
	syslog.Line
	Verdict
	// UTC is the line's time in UTC.
	UTC time.Time
	// Raw is the whole line as read (for Fields, their file form): what
	// makes an event ID unique (see mailflow.Event.ID).
	Raw string
}

// Env is what the engine shares with its sources. Sources use it on the
// goroutine that calls Consume, Sweep and Flush.
type Env struct {
	// Now is the clock: the latest time of a line (or of Advance), log time.
	Now time.Time
	// Stats counts what was read: a source counts each line it Consumes as
	// Used, Ignored or Skipped, and its Messages (and Abandoned).
	Stats Stats
	// Out are the events emitted by the current line; the engine hands
	// them on after each line.
	Out []mailflow.Event
	// Links finds the message another source traces (links.go): the
	// engine notes there every event emitted.
	Links *Links
}

// Emit emits an event.
func (e *Env) Emit(ev mailflow.Event) { e.Out = append(e.Out, ev) }

// Stats counts what a Correlator read.
type Stats struct {
	Lines    int64 // lines read
	Used     int64 // lines that produced or changed something
	Ignored  int64 // understood, nothing to trace (connect, TLS, statistics...)
	Events   int64 // events emitted
	Messages int64 // messages (trace IDs) that emitted an event
	// Abandoned counts transactions that got a queue id but ended without
	// DATA (sender address verification probes, clients that quit after
	// RCPT): they are not messages and emit nothing.
	Abandoned int64
	// Evicted counts messages evicted from memory over the cap on messages
	// in flight (their events are not lost: see Config.MaxInFlight).
	Evicted int64
	// InvalidUTF8 counts lines that were not valid UTF-8: they are read
	// with the bad bytes replaced by U+FFFD.
	InvalidUTF8 int64
	// NotUnderstood counts skipped lines by reason.
	NotUnderstood map[string]int64

	skipped    int64  // sum of NotUnderstood
	lastReason string // reason of the latest skipped line
}

// Skip counts a line that was not understood, by reason.
func (s *Stats) Skip(reason string) {
	if s.NotUnderstood == nil {
		s.NotUnderstood = map[string]int64{}
	}
	s.NotUnderstood[reason]++
	s.skipped++
	s.lastReason = reason
}

// Skipped returns how many lines were not understood so far and the
// reason of the latest one.
func (s *Stats) Skipped() (int64, string) { return s.skipped, s.lastReason }
