// Package ingest turns mail server logs into trace store events.
//
// It is the engine; the knowledge of each mail software's lines is in a
// source (package source and its sub-packages, registered in sources.go):
// source/postfix reads Postfix and the content filters beside it. The
// engine reads the lines (ReadLines and IngestReader for files, Feed and
// FeedFields for what the server receives), splits their syslog header
// (package syslog), rejects what is not a log line, hands each line to the
// source that claims it, keeps the clock (log time: the latest line's),
// counts, and hands the events the sources emit to its caller.
//
// A file is read on three goroutines when there are two cores (reading,
// preparing, correlating; see ReadLines): the preparing half of a line
// (the syslog header, the source's Prepare) needs nothing of the
// correlator's state, so it runs ahead of the correlating half on the
// other core.
package ingest

import (
	"net/netip"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
)

// Config configures a Correlator.
type Config struct {
	// AcceptedDomains are the organisation's domains, lower-case;
	// "*.example.com" matches every subdomain of example.com (not
	// example.com itself). They decide a message's Direction.
	AcceptedDomains []string
	// ContentFilters are the relays (as "ip:port") that are content
	// filters: a status=sent to one of them is a hand-over, not a delivery.
	// Empty means DefaultContentFilters. Any loopback relay whose reply
	// says "queued as NEWID" is a filter too.
	ContentFilters []string
	// InternalNetworks are the networks whose SMTP clients are the
	// organisation's without authenticating (Postfix's mynetworks beyond
	// loopback). A message comes from inside when its client
	// authenticated, is on the server itself or in one of these; from
	// outside otherwise, whatever sender it claims. Where it came from and
	// the AcceptedDomains of its recipients decide its Direction.
	InternalNetworks []netip.Prefix
	// LinkWait is how long (in log time) a message that may be the second
	// hop of another waits for its link before it becomes a message of its
	// own. Default 5 minutes.
	LinkWait time.Duration
	// PendingAfter: a message with no outcome this long (log time) after it
	// was received (still in the queue, or whose outcome was never logged)
	// is Pending, not GettingStatus for ever. Default DefaultPendingAfter.
	PendingAfter time.Duration
	// ForgetAfter is how long (log time) a message is remembered after its
	// `removed` line, for late lines. Default 10 minutes.
	ForgetAfter time.Duration
	// MaxIdle forgets a message that has had no line for this long (log
	// time), e.g. one whose end was never logged. Default 7 days.
	MaxIdle time.Duration
	// Reference places RFC 3164 timestamps (which carry no year) in time;
	// zero means now. Later lines follow the earlier ones (see syslog.Parser).
	Reference time.Time
	// Location of RFC 3164 timestamps; nil means UTC.
	Location *time.Location
	// MaxLineBytes: longer lines are counted as "too long" and skipped.
	// Default 16 KiB.
	MaxLineBytes int
	// MaxMessagesInFlight caps the messages the correlator keeps whole in
	// memory (DefaultMaxMessagesInFlight; negative: no cap). Past it the
	// least recently active message is evicted: what it held is emitted
	// with its current state, as the ageing sweep (LinkWait) would, and a
	// compact record of it stays (its trace ID, its recipients' statuses,
	// its expansions and filter verdicts), so that a late line for it
	// joins the same trace. Counted in Stats.Evicted.
	MaxMessagesInFlight int
	// MaxEvictedMessages caps those compact records (default 16 times
	// MaxMessagesInFlight): past it the oldest is forgotten, and a line
	// for it then starts a new trace (for a long queue id the same trace
	// ID, a digest of host and queue id only).
	MaxEvictedMessages int
}

// DefaultPendingAfter is the default Config.PendingAfter.
const DefaultPendingAfter = 30 * time.Minute

// DefaultMaxMessagesInFlight is the default Config.MaxMessagesInFlight.
const DefaultMaxMessagesInFlight = 20_000

// DefaultContentFilters are the usual content filter ports on loopback:
// amavis (10024), PMG (10023 incoming, 10024 outgoing), amavis' second
// instance (10026).
var DefaultContentFilters = []string{
	"127.0.0.1:10024", "127.0.0.1:10023", "127.0.0.1:10026",
	"::1:10024", "::1:10023", "::1:10026",
}

func (c *Config) defaults() {
	if len(c.ContentFilters) == 0 {
		c.ContentFilters = DefaultContentFilters
	}
	if c.LinkWait <= 0 {
		c.LinkWait = 5 * time.Minute
	}
	if c.PendingAfter <= 0 {
		c.PendingAfter = DefaultPendingAfter
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = 10 * time.Minute
	}
	if c.MaxIdle <= 0 {
		c.MaxIdle = 7 * 24 * time.Hour
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = 16 << 10
	}
	switch {
	case c.MaxMessagesInFlight == 0:
		c.MaxMessagesInFlight = DefaultMaxMessagesInFlight
	case c.MaxMessagesInFlight < 0:
		c.MaxMessagesInFlight = 0 // no cap
	}
	if c.MaxEvictedMessages <= 0 {
		c.MaxEvictedMessages = 16 * c.MaxMessagesInFlight
	}
}

// source is what the sources are configured with (the accepted domains
// lower-case).
func (c *Config) source() source.Config {
	domains := make([]string, len(c.AcceptedDomains))
	for i, d := range c.AcceptedDomains {
		domains[i] = strings.ToLower(strings.TrimSpace(d))
	}
	return source.Config{AcceptedDomains: domains, ContentFilters: c.ContentFilters, InternalNetworks: c.InternalNetworks,
		LinkWait: c.LinkWait, PendingAfter: c.PendingAfter, ForgetAfter: c.ForgetAfter, MaxIdle: c.MaxIdle,
		MaxInFlight: c.MaxMessagesInFlight, MaxEvicted: c.MaxEvictedMessages}
}

// Stats counts what a Correlator read (the engine's and its sources'
// counts).
type Stats = source.Stats

// Reasons the engine skips a line, keys of Stats.NotUnderstood (a source
// has its own: postfix.ReasonUnknownLine, ...).
const (
	ReasonEmpty     = "empty"
	ReasonNotSyslog = "not syslog"
	// ReasonNotPostfix: no source claims the line's program (the reason
	// kept its first name, which dashboards count by).
	ReasonNotPostfix = "not postfix"
	ReasonTooLong    = "too long"
)
