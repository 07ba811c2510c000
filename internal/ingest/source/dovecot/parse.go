package dovecot

import (
	"strings"
)

// What Dovecot's LMTP or LDA (with Pigeonhole's Sieve) did with one
// recipient's copy of a message, from its delivery lines:
//
//	lmtp(bob@lab.test)<4711><Y6a3EvpUt2l+eyIAYRBqSw>: msgid=<m@x>: saved mail to INBOX
//	lmtp(bob@lab.test)<4711><Y6a3...>: sieve: msgid=<m@x>: stored mail into mailbox 'Junk'
//	lmtp(bob@lab.test)<4711><Y6a3...>: sieve: msgid=<m@x>: fileinto action: stored mail into mailbox 'Junk'
//	lmtp(bob@lab.test)<4711><Y6a3...>: sieve: msgid=<m@x>: marked message to be discarded if not explicitly delivered (discard action)
//	lmtp(bob@lab.test)<4711><Y6a3...>: sieve: msgid=<m@x>: rejected message from <s@x> (reject action)
//	lmtp(bob@lab.test)<4711><Y6a3...>: sieve: msgid=<m@x>: sent vacation response to <s@x>
//	lmtp(bob@lab.test)<4711><Y6a3...>: sieve: msgid=<m@x>: vacation action: failed to send vacation response to s@x: <smtp(...): RCPT TO failed: 554 5.7.1 ...> (permanent error)
//	lmtp(bob@lab.test)<4711><Y6a3...>: sieve: msgid=<m@x>: forwarded to <c@x>
//	lmtp(trent@lab.test)<4711><Y6a3...>: Error: msgid=<m@x>: save failed to INBOX: Quota exceeded (mailbox for user is full)
//	lda(kurio)<1640><8ntICTWUfmloBgAA8Bi3+g>: msgid=<m@x>: saved mail to INBOX
//
// (as syslog has them; Dovecot's own log file puts a level, "Info: ",
// after the prefix).

// Action is what Dovecot did.
type Action uint8

// Actions.
const (
	ActionNone     Action = iota
	ActionSaved           // stored into Folder
	ActionDiscard         // discarded by Sieve
	ActionReject          // rejected by Sieve (a rejection goes back to the sender)
	ActionFailed          // the save failed (Quota: over quota)
	ActionVacation        // Sieve sent a vacation reply (besides what else it did)
	ActionRedirect        // Sieve forwarded a copy
	// ActionVacationFailed: Sieve's vacation reply could not be sent (Text
	// says why)
	ActionVacationFailed
	// ActionRejectNotSent: the rejection of a Sieve reject could not be
	// sent back to the sender
	ActionRejectNotSent
)

// Delivery is one delivery line.
type Delivery struct {
	Service   string // "lmtp", "lda"
	User      string // as Dovecot names the user: an address, or a name
	Session   string // the session id ("Y6a3EvpUt2l+eyIAYRBqSw"), "" when not logged
	MessageID string
	Sieve     bool // what Sieve did, rather than the plain delivery
	Action    Action
	Folder    string // ActionSaved, ActionFailed
	// Peer: the sender a rejection or vacation went to, the address a
	// redirect went to.
	Peer string
	// Quota: a save failed for the quota.
	Quota bool
	// Text is the rest of the line, what Dovecot said.
	Text string
}

// IsDelivery reports, cheaply, whether a Dovecot message may be a
// delivery line (an LMTP or LDA line naming a Message-ID); connects,
// disconnects, logins and IMAP lines are not.
func IsDelivery(msg string) bool {
	return (strings.HasPrefix(msg, "lmtp(") || strings.HasPrefix(msg, "lda(")) && strings.Contains(msg, "msgid=")
}

// Parse reads a delivery line; false for any other.
func Parse(msg string) (Delivery, bool) {
	var d Delivery
	open := strings.IndexByte(msg, '(')
	if open < 0 {
		return d, false
	}
	d.Service = msg[:open]
	if d.Service != "lmtp" && d.Service != "lda" {
		return d, false
	}
	rest := msg[open+1:]
	// the user may hold ')' only in pathological names: the prefix ends
	// at the first "): " or ")<"
	closeAt := strings.Index(rest, ")")
	if closeAt < 0 {
		return d, false
	}
	d.User = rest[:closeAt]
	if c := strings.IndexByte(d.User, ','); c >= 0 {
		// Dovecot 2.2: lmtp(4711, bob@x)
		d.User = strings.TrimSpace(d.User[c+1:])
	}
	rest = rest[closeAt+1:]
	// <pid><session>
	var parts []string
	for strings.HasPrefix(rest, "<") {
		e := strings.IndexByte(rest, '>')
		if e < 0 {
			return d, false
		}
		parts = append(parts, rest[1:e])
		rest = rest[e+1:]
	}
	if len(parts) >= 2 {
		d.Session = parts[1]
	}
	if !strings.HasPrefix(rest, ": ") {
		return d, false
	}
	rest = rest[2:]
	for _, lvl := range []string{"Info: ", "Error: ", "Warning: ", "Fatal: "} {
		if strings.HasPrefix(rest, lvl) {
			rest = rest[len(lvl):]
			break
		}
	}
	if strings.HasPrefix(rest, "sieve: ") {
		d.Sieve = true
		rest = rest[len("sieve: "):]
	}
	if !strings.HasPrefix(rest, "msgid=") {
		return d, false
	}
	rest = rest[len("msgid="):]
	// msgid=<id>: or msgid=unspecified: or msgid=<>:
	e := strings.Index(rest, ": ")
	if e < 0 {
		return d, false
	}
	id := rest[:e]
	if strings.HasPrefix(id, "<") && strings.HasSuffix(id, ">") {
		d.MessageID = id[1 : len(id)-1]
	}
	rest = rest[e+2:]
	d.Text = rest
	// Pigeonhole 0.5.x names the action first: "fileinto action: ..."
	if a := strings.Index(rest, " action: "); a >= 0 && a < 24 && !strings.Contains(rest[:a], " ") {
		rest = rest[a+len(" action: "):]
	}
	switch {
	case strings.HasPrefix(rest, "saved mail to "):
		d.Action = ActionSaved
		d.Folder = unquote(rest[len("saved mail to "):])
	case strings.HasPrefix(rest, "stored mail into mailbox "):
		d.Action = ActionSaved
		d.Folder = unquote(rest[len("stored mail into mailbox "):])
	case strings.HasPrefix(rest, "sent vacation response to "):
		d.Action = ActionVacation
		d.Peer = angled(rest)
	case strings.HasPrefix(rest, "failed to send vacation response to "):
		// "failed to send vacation response to s@x: <smtp(...): RCPT TO
		// failed: 554 5.7.1 ...> (permanent error)"
		d.Action = ActionVacationFailed
		d.Peer, _, _ = strings.Cut(rest[len("failed to send vacation response to "):], ":")
	case strings.HasPrefix(rest, "forwarded to "):
		d.Action = ActionRedirect
		d.Peer = angled(rest)
	case strings.HasPrefix(rest, "save failed to "), strings.HasPrefix(rest, "failed to store into mailbox "):
		d.Action = ActionFailed
		f := strings.TrimPrefix(strings.TrimPrefix(rest, "save failed to "), "failed to store into mailbox ")
		if c := strings.Index(f, ": "); c >= 0 {
			f = f[:c]
		}
		d.Folder = unquote(f)
		d.Quota = strings.Contains(rest, "Quota exceeded") || strings.Contains(rest, "quota")
	case strings.Contains(rest, "failed to send rejection"):
		// "Permanently failed to send rejection: smtp(...): RCPT TO
		// failed: ..." (the reject itself is a line of its own)
		d.Action = ActionRejectNotSent
	// the words of Sieve's discard and reject vary by version
	case strings.Contains(rest, "discard"):
		d.Action = ActionDiscard
	case strings.Contains(rest, "reject"):
		d.Action = ActionReject
		d.Peer = angled(rest)
	default:
		return d, false
	}
	return d, true
}

// unquote returns a folder name as logged: 'Junk' or INBOX, or
// "Junk" (a name Dovecot quotes for its spaces).
func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') {
		if e := strings.IndexByte(s[1:], s[0]); e >= 0 {
			return s[1 : 1+e]
		}
	}
	if sp := strings.IndexByte(s, ' '); sp >= 0 {
		s = s[:sp]
	}
	return s
}

// angled returns the first <address> of s, or "".
func angled(s string) string {
	i := strings.IndexByte(s, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], '>')
	if j < 0 {
		return ""
	}
	return s[i+1 : i+j]
}
