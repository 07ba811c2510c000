// Package dovecot is the ingest's source for Dovecot's logs: what its LMTP
// server or LDA, and the recipient's Sieve script, did with each
// recipient's copy of a message (saved into which folder, discarded,
// rejected, over quota, a vacation reply, a redirect), as events of the
// MTA's message.
//
// A delivery line is joined to the MTA's delivery (source.Links) by the
// LMTP session id Dovecot echoes in its 250 reply, which Postfix logs
// ("status=sent (250 2.0.0 <bob@lab.test> Y6a3EvpUt2l+eyIAYRBqSw Saved)"),
// else by the Message-ID and the recipient (an LDA delivery, a failure
// whose reply has no session id). Dovecot logs before it replies, so its
// line usually comes first and waits for the MTA's (source.Waiting), at
// most Config.LinkWait, then is a message of its own.
//
// Lines are read as syslog sends them (program "dovecot").
package dovecot

import (
	"encoding/json"
	"fmt"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// ReasonUnknownLine is the reason a Dovecot delivery line is not
// understood (source.Stats.NotUnderstood).
const ReasonUnknownLine = "unknown dovecot line"

// Source reads Dovecot's lines (source.Source).
type Source struct {
	env     *source.Env
	waiting *source.Waiting
}

// New returns the Dovecot source.
func New(cfg source.Config, env *source.Env) source.Source {
	return &Source{env: env, waiting: source.NewWaiting(cfg, env)}
}

// Prepare claims Dovecot's lines; all but the delivery lines are ignored.
func (s *Source) Prepare(program, msg string) (source.Verdict, bool) {
	if program != "dovecot" {
		return source.Verdict{}, false
	}
	return source.Verdict{Daemon: "dovecot", Ignore: !IsDelivery(msg)}, true
}

// Consume reads a delivery line.
func (s *Source) Consume(l *source.Line) {
	d, ok := Parse(l.Message)
	if !ok {
		// an LMTP line naming a Message-ID that is no delivery (a
		// debug line, a Sieve notice we do not know): nothing lost
		s.env.Stats.Ignored++
		return
	}
	e, ok := Event(d)
	if !ok {
		s.env.Stats.Skip(ReasonUnknownLine)
		return
	}
	s.env.Stats.Used++
	rcpt := ""
	if d.User != "" {
		rcpt = mailflow.NormalizeAddress(d.User)
	}
	e.ID = source.Digest("dovecot", l.Host, l.Raw)
	e.Time = l.UTC
	e.Recipient = rcpt
	e.ServerHostname = l.Host
	s.waiting.Add(&source.Waited{Source: "dovecot", Host: l.Host, Time: l.UTC,
		Session: d.Session, MessageID: d.MessageID, Recipient: rcpt,
		// what Dovecot did decides over the MTA's 250, logged after it;
		// a failed save yields to the MTA's outcome (a 4xx retried)
		NotBefore: d.Action != ActionFailed,
		Events:    []mailflow.Event{e}})
}

// Event is the event of a delivery line (its ID, time, recipient and
// trace left to the caller): a Save into the folder; a Sieve discard
// FilterAsSpam (a rule dropped it: it is in no mailbox); a Sieve reject
// or a failed save a Fail; a vacation reply or a redirect a Sieve event,
// which decides no status (what else the script did does).
func Event(d Delivery) (mailflow.Event, bool) {
	e := mailflow.Event{Source: "dovecot/" + d.Service, Folder: d.Folder}
	by := "Dovecot " + d.Service
	if d.Sieve {
		by = "the recipient's Sieve script"
	}
	switch d.Action {
	case ActionSaved:
		e.Type = mailflow.EventSave
		e.Detail = fmt.Sprintf("stored into the mailbox folder %q by %s", d.Folder, by)
	case ActionDiscard:
		e.Type = mailflow.EventFilterAsSpam
		e.Action = "discard"
		e.Detail = "discarded by " + by + ": " + d.Text
	case ActionReject:
		e.Type = mailflow.EventFail
		e.Action = "reject"
		e.Detail = "rejected by " + by + ": " + d.Text
	case ActionFailed:
		e.Type = mailflow.EventFail
		e.Detail = fmt.Sprintf("not stored into %q by %s: %s", d.Folder, by, d.Text)
		if d.Quota {
			e.Action = "quota"
			e.Detail = fmt.Sprintf("over quota: not stored into %q by %s: %s", d.Folder, by, d.Text)
		}
	case ActionVacation:
		e.Type = mailflow.EventSieve
		e.Action = "vacation"
		e.Detail = "the recipient's Sieve script sent a vacation reply to <" + d.Peer + ">"
	case ActionVacationFailed:
		e.Type = mailflow.EventSieve
		e.Action = "vacation"
		e.Detail = "the recipient's Sieve script could not send a vacation reply to <" + d.Peer + ">: " + d.Text
	case ActionRejectNotSent:
		e.Type = mailflow.EventSieve
		e.Action = "reject"
		e.Detail = "the rejection could not be sent back to the sender: " + d.Text
	case ActionRedirect:
		e.Type = mailflow.EventSieve
		e.Action = "redirect"
		e.Detail = "the recipient's Sieve script forwarded a copy to <" + d.Peer + ">"
	default:
		return e, false
	}
	return e, true
}

// Linked emits the delivery lines whose message has now been seen.
func (s *Source) Linked() { s.waiting.Retry() }

// Sweep makes the lines that waited too long messages of their own.
func (s *Source) Sweep() { s.waiting.Sweep() }

// Flush releases every waiting line.
func (s *Source) Flush() { s.waiting.Flush() }

// TraceID: Dovecot names no messages of its own.
func (s *Source) TraceID(string, string) string { return "" }

// State returns the lines waiting for their message.
func (s *Source) State() (json.RawMessage, error) { return s.waiting.State() }

// Restore loads them.
func (s *Source) Restore(b json.RawMessage) error { return s.waiting.Restore(b) }
