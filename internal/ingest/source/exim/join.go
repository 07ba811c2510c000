package exim

import (
	"fmt"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Joins: what another source's line tells of an Exim message.
//
// Exim's spam ACL (spamd_address ... variant=rspamd) passes rspamd the
// message id as the queue id, the envelope sender and the recipients;
// rspamd logs them (qid:, rcpts:) with its verdict, which the rspamd
// source joins to the message by that id (source.Links.QueueID, which
// also finds a message of Exim's own log file, whose lines name no host).
// When the ACL refuses the message ("1rR4oL-00000000GKS-2H5i H=...
// F=<...> rejected after DATA: ..."), Exim's line names no recipient:
// the refusal is the message's until rspamd's line names them, then each
// recipient's (TakeRecipients), as Postfix's milter-reject names its
// recipient; rspamd's line names the Message-ID too, which a trace by
// Message-ID finds the refused message by, as it does Postfix's.

// dataReject is an ACL's reject as its events need it: kept on a message
// refused after DATA until its recipients are known.
type dataReject struct {
	Time       time.Time          `json:"time"`
	Raw        string             `json:"raw"`
	Type       mailflow.EventType `json:"type"`
	DSN        string             `json:"dsn,omitempty"`
	Verb       string             `json:"verb"`
	Stage      string             `json:"stage"`
	Reason     string             `json:"reason,omitempty"`
	ClientName string             `json:"clientName,omitempty"`
	ClientIP   string             `json:"clientIp,omitempty"`
}

// rejectEvent emits the event of a reject for recipient rc ("": the
// message's).
func (c *Source) rejectEvent(m *message, r *dataReject, rc string) {
	e := c.newEvent(m, r.Time, r.Raw, r.Type, rc)
	e.Detail = fmt.Sprintf("%s %s: %s", r.Verb, r.Stage, r.Reason)
	e.DSN = r.DSN
	e.SMTPResponse = r.Reason
	e.ClientHostname, e.ClientIP = r.ClientName, r.ClientIP
	if rc != "" {
		m.Status[rc], _ = mailflow.StatusOf(r.Type)
	}
	c.add(m, e)
}

// TakeRecipients gives a message refused after DATA, whose recipients
// and Message-ID Exim did not log, the Message-ID and the refusal of each
// recipient another source's line names (source.RecipientTaker): rspamd's
// verdict on it. The message is found on host, or, as
// source.Links.QueueID finds it, among those of Exim's own log file (no
// host). Any other message is left alone.
func (c *Source) TakeRecipients(host, id, messageID string, rcpts []string) {
	if !isID(id) {
		return
	}
	m := c.msgs[host+"\x00"+id]
	if m == nil && host != "" {
		m = c.msgs["\x00"+id]
	}
	if m == nil || m.DataReject == nil {
		return
	}
	r := m.DataReject
	m.DataReject = nil
	if m.MessageID == "" {
		m.MessageID = messageID
	}
	for _, rc := range rcpts {
		rc = mailflow.NormalizeAddress(rc)
		if rc == "" || m.Status[rc] != "" {
			continue
		}
		c.rejectEvent(m, r, rc)
	}
}
