// Package amavis reads amavisd-new's verdicts as events: Passed or
// Blocked, the category (CLEAN, SPAM, SPAMMY, INFECTED, BANNED, ...), the
// hits (SpamAssassin's score), the quarantine and the mail_id.
//
// Amavis sits between two Postfix hops (content_filter to it, its
// re-injection back), so its line is also what links the two hops into
// one trace: the Postfix source (source/postfix, filters.go) claims
// amavis' lines for that link, and takes the verdict's events from here,
// the grammar of the verdict being amavis' own.
package amavis

import (
	"strings"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Verdict is what amavis' main log line says of a message:
//
//	(233291-12) Passed CLEAN {RelayedInbound}, [81.30.156.23]:49571 [109.248.147.159]
//	<s@x> -> <r@y>, Queue-ID: 4PbC7269xVz3tBr, Message-ID: <m@x>, mail_id: iNt6_L59opC5,
//	Hits: 2.681, size: 104984, queued_as: 4PbC774GLyz3tG3, ...
//	(01234-05) Blocked SPAM {DiscardedInbound,Quarantined}, ..., quarantine: spam-AbCd.gz, ...
type Verdict struct {
	ID       string // amavis' id of the run, "233291-12"
	Verdict  string // Passed, Blocked
	Category string // CLEAN, SPAM, SPAMMY, INFECTED, BANNED, BAD-HEADER, ...
	Flags    string // RelayedInbound, DiscardedInbound,Quarantined, ...
	// Hits is SpamAssassin's score ("-" when it did not run); Virus names
	// what an INFECTED message carries.
	Hits       string
	Virus      string
	Quarantine string // the quarantine's id (a file, a key), "" when none
	MailID     string
}

// Parse reads the verdict of amavis' main log line (its message, or the
// whole line with its syslog header); false for any other.
func Parse(msg string) (Verdict, bool) {
	var v Verdict
	k := strings.Index(msg, ") Passed ")
	// the earlier of the two: a Blocked after a Passed does not count, so
	// look no further (the line lists every recipient and the subject)
	within := msg
	if k >= 0 && k+len(") Blocked ") < len(msg) {
		within = msg[:k+len(") Blocked ")]
	}
	if b := strings.Index(within, ") Blocked "); b >= 0 && (k < 0 || b < k) {
		k = b
	}
	if k < 0 {
		return v, false
	}
	i := strings.LastIndexByte(msg[:k], '(')
	if i < 0 {
		return v, false
	}
	msg = msg[i:]
	e := strings.IndexByte(msg, ')')
	if e < 0 {
		return v, false
	}
	v.ID = msg[1:e]
	rest := strings.TrimSpace(msg[e+1:])
	var after string
	v.Verdict, after, _ = strings.Cut(rest, " ")
	if v.Verdict != "Passed" && v.Verdict != "Blocked" {
		return v, false
	}
	v.Category, _, _ = strings.Cut(after, " ")
	v.Category = strings.TrimSuffix(v.Category, ",")
	if a := strings.IndexByte(after, '{'); a >= 0 {
		if b := strings.IndexByte(after[a:], '}'); b > 0 {
			v.Flags = after[a+1 : a+b]
		}
	}
	// INFECTED (Eicar-Signature) {...}
	if a := strings.Index(after, " ("); a >= 0 && a < len(v.Category)+2 {
		if b := strings.IndexByte(after[a:], ')'); b > 0 {
			v.Virus = after[a+2 : a+b]
		}
	}
	v.Hits, v.Quarantine, v.MailID = fields(after)
	return v, true
}

// fields returns the values of ", Hits: value, ", ", quarantine: ...",
// ", mail_id: ..." in s (the first of each), in one pass over the ", " of
// s (a verdict's line lists every recipient and the subject), not three
// searches.
func fields(s string) (hits, quarantine, mailID string) {
	var seenHits, seenQuarantine, seenMailID bool
	for i := 0; ; {
		j := strings.Index(s[i:], ", ")
		if j < 0 {
			return
		}
		i += j
		name, rest := "", s[i+2:]
		switch {
		case !seenHits && strings.HasPrefix(rest, "Hits: "):
			name, seenHits = "Hits", true
		case !seenQuarantine && strings.HasPrefix(rest, "quarantine: "):
			name, seenQuarantine = "quarantine", true
		case !seenMailID && strings.HasPrefix(rest, "mail_id: "):
			name, seenMailID = "mail_id", true
		}
		if name != "" {
			v := rest[len(name)+2:]
			if k := strings.Index(v, ", "); k >= 0 {
				v = v[:k]
			}
			switch name {
			case "Hits":
				hits = v
			case "quarantine":
				quarantine = v
			default:
				mailID = v
			}
		}
		i++
	}
}

// Action is the verdict in one word pair: "Passed CLEAN", "Blocked SPAM".
func (v Verdict) Action() string { return v.Verdict + " " + v.Category }

// Fill sets what an event says of the verdict: Action, Score, the virus
// as its symbol, and the detail ("amavis: Passed CLEAN {RelayedInbound},
// hits 2.681, mail_id ...").
func (v Verdict) Fill(e *mailflow.Event) {
	e.Action = v.Action()
	if v.Hits != "" && v.Hits != "-" {
		e.Score = v.Hits
	}
	if v.Virus != "" {
		e.Symbols = []string{v.Virus}
	}
	e.Detail = v.Detail()
}

// Detail is the verdict as an event's detail.
func (v Verdict) Detail() string {
	// (appended, not fmt'd: every verdict of a log comes here)
	b := make([]byte, 0, 64+len(v.Virus)+len(v.Flags)+len(v.Quarantine))
	b = append(append(append(append(b, "amavis: "...), v.Verdict...), ' '), v.Category...)
	if v.Virus != "" {
		b = append(append(append(b, " ("...), v.Virus...), ')')
	}
	if v.Flags != "" {
		b = append(append(append(b, " {"...), v.Flags...), '}')
	}
	if v.Hits != "" && v.Hits != "-" {
		b = append(append(b, ", hits "...), v.Hits...)
	}
	if v.Quarantine != "" {
		b = append(append(b, ", quarantined as "...), v.Quarantine...)
	}
	if v.MailID != "" {
		b = append(append(b, ", mail_id "...), v.MailID...)
	}
	return string(b)
}

// ScanEvent is the Scan event of a verdict that passed the message (a
// blocked one is the FilterAsSpam or Quarantine event the Postfix
// source makes, filled by Fill): its ID, time and trace left to the
// caller.
func ScanEvent(v Verdict) mailflow.Event {
	e := mailflow.Event{Type: mailflow.EventScan, Source: "amavis"}
	v.Fill(&e)
	return e
}
