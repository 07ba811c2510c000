// Package mailflow is mailtrace's domain vocabulary: what happens to a
// message (events, statuses, directions), what a trace returns (rows, pages,
// counts) and how it is asked (queries, address patterns, cursors). The
// ingest produces it, the store adapters keep it, the controllers and CLIs
// show it; none of them owns it.
//
// Data model. A message is identified by its message trace ID (our own
// per-message id, assigned by ingest). Every event belongs to one message and,
// optionally, to one recipient of it. A store keeps:
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
// Conventions every store adapter follows (package storetest checks them):
// rows hold addresses (Sender, Recipient, ExpandedFrom) as NormalizeAddress
// gives them, lower-cased with strings.ToLower in Go, never with the
// database's lower(); a row's Received is the earliest Event.Received stated
// by any of the message's events, else the earliest event time of the
// message, and moves (on every row of the message) when an earlier one
// arrives; the sender's and recipient's domain is what follows the last '@'.
package mailflow

import "time"

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
	// EventScan is a content scanner's verdict (rspamd, amavis: Action,
	// Score, Symbols); what the MTA did about it (a reject, a hold) is an
	// event of its own, so a Scan decides no status.
	EventScan EventType = "Scan"
	// EventSieve is what the recipient's Sieve script did besides storing
	// (a vacation reply, a redirect, a rejection message sent back).
	EventSieve EventType = "Sieve"

	EventDeliver      EventType = "Deliver"      // delivered, or accepted by the next hop outside
	EventSave         EventType = "Save"         // stored into a mailbox folder (Dovecot, Sieve: Event.Folder); a delivery
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
	case EventDeliver, EventSave:
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

// Placement is where a recipient's copy was stored: the folder of a Save
// event and when it was stored.
type Placement struct {
	Folder string
	Time   time.Time
}

// PlacementOf returns the placement an event gives its recipient, and false
// for events that store nothing (only a Save that names its folder does).
func PlacementOf(e *Event) (Placement, bool) {
	if e.Type != EventSave || e.Folder == "" || e.Recipient == "" {
		return Placement{}, false
	}
	return Placement{Folder: e.Folder, Time: e.Time}, true
}

// Supersedes reports whether placement p, learned from an event, replaces
// the current one cur: the later Save wins (a re-delivery into another
// folder); at the same instant the greater folder name, so that the folder
// does not depend on the order the events arrive in.
func (p Placement) Supersedes(cur Placement) bool {
	if cur.Folder == "" {
		return true
	}
	if !p.Time.Equal(cur.Time) {
		return p.Time.After(cur.Time)
	}
	return p.Folder > cur.Folder
}

// FolderOf computes a recipient's mailbox folder from its events, in any
// order: that of its latest Save ("" when none).
func FolderOf(events []Event) string {
	var cur Placement
	for i := range events {
		if p, ok := PlacementOf(&events[i]); ok && p.Supersedes(cur) {
			cur = p
		}
	}
	return cur.Folder
}
