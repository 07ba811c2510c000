package mailflow

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

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

	// What a content scanner (rspamd, amavis) said of the message (a Scan
	// event, or the FilterAsSpam or Quarantine it caused): its action or
	// verdict ("add header", "reject", "Passed CLEAN", "Blocked SPAM"),
	// its score ("15.00/15.00": score and threshold, or amavis' hits) and
	// the rules that fired.
	Action  string   `json:"action,omitempty"`
	Score   string   `json:"score,omitempty"`
	Symbols []string `json:"symbols,omitempty"`
	// Folder is the mailbox folder the recipient's copy was stored into
	// (Dovecot's LMTP or LDA, a Sieve fileinto): "INBOX", "Junk".
	Folder string `json:"folder,omitempty"`
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
