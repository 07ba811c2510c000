// Package store is the trace store port: where message events are appended
// and where traces run. Adapters live in sub-packages (sqlite, postgres) and
// must all pass the shared conformance suite in package storetest.
//
// Data model. A message is identified by its message trace ID (our own
// per-message id, assigned by ingest). Every event belongs to one message and,
// optionally, to one recipient of it. The store keeps:
//
//   - the event timeline, append-only;
//   - one row per (message, recipient), the unit a trace returns, with the
//     message's attributes (received time, sender, subject, ...) and the
//     recipient's current status, which is derived from that recipient's events
//     (see DeriveStatus). A message whose recipients are not yet known has a
//     single placeholder row with an empty recipient and status GettingStatus;
//     it disappears when the first recipient row appears. The placeholder's
//     status is derived from the message-level events (a message discarded
//     before its recipients were logged shows that outcome); message-level
//     events never decide a recipient row's status.
//
// Events may arrive out of order and may be appended more than once: appending
// an event whose ID is already stored changes nothing.
//
// Conventions every adapter follows (the conformance suite checks them): rows
// hold addresses (Sender, Recipient, ExpandedFrom) as NormalizeAddress gives
// them, lower-cased with strings.ToLower in Go, never with the database's
// lower(); a row's Received is the earliest Event.Received stated by any of
// the message's events, else the earliest event time of the message, and
// moves (on every row of the message) when an earlier one arrives; the
// sender's and recipient's domain is what follows the last '@'.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Status is the delivery status of one (message, recipient) row.
type Status string

// The delivery statuses, exactly as PRODUCT.md names them.
const (
	StatusDelivered      Status = "Delivered"
	StatusPending        Status = "Pending"
	StatusExpanded       Status = "Expanded"
	StatusFailed         Status = "Failed"
	StatusQuarantined    Status = "Quarantined"
	StatusFilteredAsSpam Status = "FilteredAsSpam"
	StatusGettingStatus  Status = "GettingStatus"
)

// AllStatuses lists every status in a stable order (the order counts are shown in).
var AllStatuses = []Status{
	StatusDelivered, StatusPending, StatusExpanded, StatusFailed,
	StatusQuarantined, StatusFilteredAsSpam, StatusGettingStatus,
}

// Direction of a message relative to the organisation.
type Direction string

// Directions. DirectionAll is only meaningful as a filter.
const (
	DirectionInbound  Direction = "Inbound"
	DirectionOutbound Direction = "Outbound"
	DirectionInternal Direction = "Internal"
	DirectionAll      Direction = "All"
)

// EventType names what happened to a message.
type EventType string

// Event types. The first group sets no status of its own; the second decides a
// recipient's status (see StatusOf).
const (
	EventReceive  EventType = "Receive"  // the message was received (smtpd, pickup)
	EventSubmit   EventType = "Submit"   // handed to the queue / a content filter
	EventResolve  EventType = "Resolve"  // an address was rewritten (canonical, virtual)
	EventRedirect EventType = "Redirect" // redirected to another recipient
	EventTransfer EventType = "Transfer" // moved to another queue / message (e.g. after a content filter)
	EventSend     EventType = "Send"     // handed to the next hop (relay), outcome on that hop pending
	EventNotify   EventType = "Notify"   // a delivery status notification (bounce) was generated

	EventDeliver      EventType = "Deliver"      // delivered, or accepted by the next hop outside
	EventDefer        EventType = "Defer"        // deferred; delivery will be retried
	EventFail         EventType = "Fail"         // bounced, expired or rejected
	EventExpand       EventType = "Expand"       // a group/alias was expanded; members get rows of their own
	EventQuarantine   EventType = "Quarantine"   // held (quarantine, hold queue)
	EventFilterAsSpam EventType = "FilterAsSpam" // rejected, blocked or discarded as spam or by policy
)

// StatusOf returns the status an event of this type gives its recipient, and
// false for events that do not decide a status.
func StatusOf(t EventType) (Status, bool) {
	switch t {
	case EventDeliver:
		return StatusDelivered, true
	case EventDefer:
		return StatusPending, true
	case EventFail:
		return StatusFailed, true
	case EventExpand:
		return StatusExpanded, true
	case EventQuarantine:
		return StatusQuarantined, true
	case EventFilterAsSpam:
		return StatusFilteredAsSpam, true
	}
	return "", false
}

// statusRank breaks ties between outcome events that carry the same
// timestamp: a final outcome beats a deferral, and a hold or a block beats a
// delivery reported by the same log second (a filter that "sent" a message
// it quarantined did not deliver it).
func statusRank(s Status) int {
	switch s {
	case StatusPending:
		return 1
	case StatusExpanded:
		return 2
	case StatusDelivered:
		return 3
	case StatusFailed:
		return 4
	case StatusQuarantined:
		return 5
	case StatusFilteredAsSpam:
		return 6
	}
	return 0
}

// Outcome is the status-deciding part of a recipient's history.
type Outcome struct {
	Status Status
	Time   time.Time
}

// Supersedes reports whether outcome o, learned from an event, replaces the
// current outcome cur. Later events win; at the same instant the higher rank
// wins. This makes the derived status independent of arrival order.
func (o Outcome) Supersedes(cur Outcome) bool {
	if cur.Status == "" || cur.Status == StatusGettingStatus {
		return true
	}
	if !o.Time.Equal(cur.Time) {
		return o.Time.After(cur.Time)
	}
	return statusRank(o.Status) > statusRank(cur.Status)
}

// DeriveStatus computes a recipient's status from its events, in any order.
// A recipient with no status-deciding event is GettingStatus.
func DeriveStatus(events []Event) Status {
	cur := Outcome{Status: StatusGettingStatus}
	for _, e := range events {
		s, ok := StatusOf(e.Type)
		if !ok {
			continue
		}
		o := Outcome{Status: s, Time: e.Time}
		if o.Supersedes(cur) {
			cur = o
		}
	}
	return cur.Status
}

// Event is one thing that happened to a message, as the ingest (or
// `mailtrace events load`, one JSON object per line) appends it. Message-level
// attributes (sender, subject, ...) may be repeated on every event or carried
// by one of them; empty fields never erase what the store already knows.
type Event struct {
	// ID makes appends idempotent: an event whose ID is already stored is
	// ignored. When empty, the store derives one from the event's content.
	ID string `json:"id,omitempty"`
	// Time the event happened (UTC).
	Time time.Time `json:"time"`
	// MessageTraceID is our own per-message id. Required.
	MessageTraceID string `json:"messageTraceId"`
	// Recipient the event concerns; empty for message-level events (Receive).
	Recipient string `json:"recipient,omitempty"`
	// Type of the event. Required.
	Type EventType `json:"event"`
	// Detail is human-readable text: why, what the server said.
	Detail string `json:"detail,omitempty"`
	// Source names the program that logged it (smtpd, smtp, qmgr, amavis...).
	Source string `json:"source,omitempty"`

	// Message-level attributes.
	MessageID        string    `json:"messageId,omitempty"` // the Message-ID header
	Sender           string    `json:"sender,omitempty"`
	Subject          string    `json:"subject,omitempty"`
	Size             int64     `json:"size,omitempty"`
	Direction        Direction `json:"direction,omitempty"`
	OriginalClientIP string    `json:"originalClientIp,omitempty"` // first hop that handed it to us
	FromIP           string    `json:"fromIp,omitempty"`           // the IP it was received from
	// Received is when the message entered the organisation. When empty the
	// earliest event time of the message is used.
	Received time.Time `json:"received,omitzero"`

	// Recipient-level attributes.
	ToIP         string `json:"toIp,omitempty"`         // where it was sent to
	ExpandedFrom string `json:"expandedFrom,omitempty"` // the group/alias this recipient came from

	// Where the event was logged and the peer involved.
	ServerHostname string `json:"serverHostname,omitempty"`
	ServerIP       string `json:"serverIp,omitempty"`
	ClientHostname string `json:"clientHostname,omitempty"`
	ClientIP       string `json:"clientIp,omitempty"`
	Relay          string `json:"relay,omitempty"`
	DSN            string `json:"dsn,omitempty"`
	SMTPResponse   string `json:"smtpResponse,omitempty"`
}

// Validate reports what makes an event unusable.
func (e *Event) Validate() error {
	switch {
	case e.MessageTraceID == "":
		return errors.New("event: messageTraceId is required")
	case e.Type == "":
		return errors.New("event: event (type) is required")
	case e.Time.IsZero():
		return errors.New("event: time is required")
	}
	for _, ip := range []string{e.OriginalClientIP, e.FromIP, e.ToIP, e.ServerIP, e.ClientIP} {
		if ip == "" {
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return errors.New("event: " + ip + " is not an IP address")
		}
	}
	return nil
}

// Row is one (message, recipient) result of a trace.
type Row struct {
	Received         time.Time `json:"received"`
	Sender           string    `json:"sender"`
	Recipient        string    `json:"recipient"`
	Subject          string    `json:"subject"`
	Status           Status    `json:"status"`
	MessageID        string    `json:"messageId"`
	MessageTraceID   string    `json:"messageTraceId"`
	Size             int64     `json:"size"`
	OriginalClientIP string    `json:"originalClientIp"`
	FromIP           string    `json:"fromIp"`
	ToIP             string    `json:"toIp"`
	Direction        Direction `json:"direction"`
	ExpandedFrom     string    `json:"expandedFrom,omitempty"`
	// StatusTime is when the current status was decided (zero for GettingStatus).
	StatusTime time.Time `json:"statusTime,omitzero"`
}

// SubjectMatch selects how Query.Subject is compared.
type SubjectMatch string

// Subject comparisons (case-insensitive).
const (
	SubjectContains   SubjectMatch = "Contains"
	SubjectStartsWith SubjectMatch = "StartsWith"
	SubjectEndsWith   SubjectMatch = "EndsWith"
)

// Query is a trace: every filter is optional; filters combine with AND and
// the values inside one list with OR.
type Query struct {
	// Start (inclusive) and End (exclusive) bound the received time. Required.
	Start, End time.Time
	// Senders and Recipients are address patterns; `*` matches any run of
	// characters; matching is case-insensitive.
	Senders    []string
	Recipients []string
	Statuses   []Status
	// MessageID matches the Message-ID header, with or without angle brackets.
	MessageID      string
	MessageTraceID string
	// Direction; empty or All means any.
	Direction Direction
	// OriginalClientIP, FromIP and ToIP are IP prefixes (a lone address is a /32 or /128).
	OriginalClientIP netip.Prefix
	FromIP           netip.Prefix
	ToIP             netip.Prefix
	// Subject is compared as SubjectMatch says (Contains when empty).
	Subject      string
	SubjectMatch SubjectMatch
	// Scope restricts what the query may see, whatever its filters: a row
	// is visible when its sender OR its recipient matches one of these
	// address patterns. nil is unrestricted; an empty non-nil Scope sees
	// nothing. It is how a tenant's grants (TracePolicy) reach the store,
	// which enforces them in the query itself.
	Scope []string
}

// Unscoped reports whether the query may see every row.
func (q *Query) Unscoped() bool { return q.Scope == nil }

// Cursor marks a position in a trace's result; the zero value is the start.
// It is opaque to callers and can be stored as a string.
type Cursor string

// Page is one page of a trace.
type Page struct {
	Rows []Row
	// Next is the cursor of the following page, empty when this page is the last.
	Next Cursor
}

// Counts is the number of matching rows per status, and their total.
type Counts struct {
	ByStatus map[Status]int64
	Total    int64
}

// Store is the trace store port.
type Store interface {
	// Append stores events. It is idempotent per event ID and atomic per call.
	Append(ctx context.Context, events []Event) error
	// Trace returns up to limit rows matching q after cursor, newest received
	// first (ties broken by message trace ID then recipient, both ascending).
	Trace(ctx context.Context, q Query, cursor Cursor, limit int) (Page, error)
	// Count counts the rows matching q per status.
	Count(ctx context.Context, q Query) (Counts, error)
	// Events returns one message's events for one recipient in time order:
	// the message-level events (empty recipient) and that recipient's own.
	Events(ctx context.Context, messageTraceID, recipient string) ([]Event, error)
	// ScopedEvents is Events for a caller restricted to scope (see
	// Query.Scope): it returns nothing unless the (message, recipient) row
	// is visible in scope (for an empty recipient: any row of the message).
	// A nil scope is unrestricted.
	ScopedEvents(ctx context.Context, scope []string, messageTraceID, recipient string) ([]Event, error)
	// Prune removes everything received before cutoff (retention).
	Prune(ctx context.Context, cutoff time.Time) error
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Streamer is implemented by stores that can send a whole trace from one
// query (a server-side stream) instead of one query per page: what a report
// over millions of rows uses. Stream calls fn for each row matching q after
// cursor, in Trace's order, and returns fn's first error (fn must not keep
// the *Row). The rows are the ones paging through Trace from cursor gives;
// memory stays bounded whatever the size of the result, because rows are
// read from the server as fn consumes them.
type Streamer interface {
	Stream(ctx context.Context, q Query, cursor Cursor, fn func(*Row) error) error
}

// ErrInvalidQuery wraps a query the store refuses.
var ErrInvalidQuery = errors.New("invalid query")

// Key returns the event's idempotency key: its ID, or when that is empty a
// digest of what the event says, so that replaying the same input twice
// stores it once.
func (e *Event) Key() string {
	if e.ID != "" {
		return e.ID
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s",
		e.Time.UnixNano(), e.MessageTraceID, NormalizeAddress(e.Recipient), e.Type, e.Source,
		e.Detail, e.Relay, e.DSN, e.SMTPResponse)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
