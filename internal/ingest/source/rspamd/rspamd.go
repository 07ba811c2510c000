// Package rspamd is the ingest's source for rspamd's logs: the result of
// each scan (its task log line) as a Scan event of the message it
// scanned, with the action, the score and the symbols that fired.
//
// What the MTA did about the scan (a milter reject, an added header) is
// the MTA's source's to tell; this source joins the verdict to the MTA's
// message (source.Links): by the queue id rspamd was told (`qid:`, which
// Postfix's milter protocol passes, and Exim's spam ACL as its message
// id) on the same host, else by the Message-ID. A verdict whose message
// is not known yet waits for it (source.Waiting), at most Config.LinkWait,
// then is a message of its own. The envelope recipients it names
// (`rcpts:`) are told to the MTA's source (source.RecipientTaker): Exim
// names none when its spam ACL refuses a message after DATA.
//
// Lines are read as syslog sends them (program "rspamd"), or as rspamd's
// own log file writes them when a shipper tails it with that tag: the
// task log line is found by its marker wherever it is in the message.
package rspamd

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// ReasonUnknownLine is the reason a task log line rspamd wrote is not
// understood (source.Stats.NotUnderstood).
const ReasonUnknownLine = "unknown rspamd line"

// Source reads rspamd's lines (source.Source).
type Source struct {
	env     *source.Env
	waiting *source.Waiting
}

// New returns the rspamd source.
func New(cfg source.Config, env *source.Env) source.Source {
	return &Source{env: env, waiting: source.NewWaiting(cfg, env)}
}

// Prepare claims rspamd's lines; all but a scan's result are ignored.
func (s *Source) Prepare(program, msg string) (source.Verdict, bool) {
	if program != "rspamd" {
		return source.Verdict{}, false
	}
	return source.Verdict{Daemon: "rspamd", Ignore: !IsTaskLog(msg)}, true
}

// Consume reads a scan's result.
func (s *Source) Consume(l *source.Line) {
	r, ok := Parse(l.Message)
	if !ok {
		s.env.Stats.Skip(ReasonUnknownLine)
		return
	}
	s.env.Stats.Used++
	e := ScanEvent(r)
	e.ID = source.Digest("rspamd", l.Host, l.Raw)
	e.Time = l.UTC
	e.ServerHostname = l.Host
	s.waiting.Add(&source.Waited{Source: "rspamd", Host: l.Host, Time: l.UTC,
		QueueID: r.QueueID, MessageID: r.MessageID, Events: []mailflow.Event{e}, Rcpts: r.Rcpts})
}

// maxDetailSymbols is how many symbols an event's detail names.
const maxDetailSymbols = 8

// ScanEvent is the Scan event of a result (its ID, time and trace left to
// the caller).
func ScanEvent(r Result) mailflow.Event {
	score := r.Score
	if r.Required != "" {
		score += "/" + r.Required
	}
	var d strings.Builder
	fmt.Fprintf(&d, "rspamd: %s, score %s", r.Action, r.Score)
	if r.Required != "" {
		fmt.Fprintf(&d, " (reject at %s)", r.Required)
	}
	if top, more := Top(r.Symbols, maxDetailSymbols); len(top) > 0 {
		d.WriteString("; symbols: " + strings.Join(top, ", "))
		if more > 0 {
			fmt.Fprintf(&d, " and %d more", more)
		}
	}
	return mailflow.Event{
		Type:     mailflow.EventScan,
		Source:   "rspamd",
		Detail:   d.String(),
		Action:   r.Action,
		Score:    score,
		Symbols:  r.Symbols,
		ClientIP: validIP(r.IP),
	}
}

// validIP keeps an address the store accepts (Event.Validate).
func validIP(s string) string {
	if strings.Trim(s, "0123456789abcdefABCDEF.:") != "" || s == "" {
		return ""
	}
	return s
}

// Linked emits the results whose message has now been seen.
func (s *Source) Linked() { s.waiting.Retry() }

// Sweep makes the results that waited too long messages of their own.
func (s *Source) Sweep() { s.waiting.Sweep() }

// Flush releases every waiting result.
func (s *Source) Flush() { s.waiting.Flush() }

// TraceID: rspamd names no messages of its own.
func (s *Source) TraceID(string, string) string { return "" }

// State returns the results waiting for their message.
func (s *Source) State() (json.RawMessage, error) { return s.waiting.State() }

// Restore loads them.
func (s *Source) Restore(b json.RawMessage) error { return s.waiting.Restore(b) }
