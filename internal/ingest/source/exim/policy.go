package exim

import (
	"strings"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Policy: the decisions that depend on nothing but their arguments (what
// an event is, its DSN, which way a message goes), each with a table test.

// outcomeDSN is the DSN of a delivery, failure or deferral: the enhanced
// code of the remote's reply (C= of a delivery, the reply inside a
// failure's or deferral's reason), else its class ("550 ..." gives
// "5.0.0"), else what the reason says: Exim's own failures ("Unrouteable
// address" 5.1.1, "retry timeout exceeded" 4.4.7 then 5.4.7 as it fails),
// 2.0.0 for a delivery, 4.0.0 and 5.0.0 otherwise.
func outcomeDSN(kind Kind, confirmation, reason string) string {
	reply := confirmation
	if kind != KindDelivery {
		reply = response(reason)
	}
	if reply != "" {
		if d := enhancedCode(reply[4:]); d != "" {
			return d
		}
		if kind == KindDelivery || reply[0] == kindClass(kind) {
			return reply[:1] + ".0.0"
		}
	}
	switch kind {
	case KindDelivery:
		return "2.0.0"
	case KindDefer:
		return "4.0.0"
	}
	lower := strings.ToLower(reason)
	switch {
	case strings.Contains(lower, "unrouteable address"), strings.Contains(lower, "unknown user"), strings.Contains(lower, "no such user"):
		return "5.1.1"
	case strings.Contains(lower, "retry timeout exceeded"), strings.Contains(lower, "retry time not reached for any host after a long failure period"):
		return "5.4.7"
	case strings.Contains(lower, "too big"), strings.Contains(lower, "message_size_limit"):
		return "5.3.4"
	}
	return "5.0.0"
}

func kindClass(k Kind) byte {
	switch k {
	case KindDefer:
		return '4'
	case KindFail:
		return '5'
	}
	return '2'
}

// rejectDSN is the DSN of an ACL's reject: the enhanced code its message
// starts with (an ACL's `message = 5.7.1 ...`), else what Exim's own
// messages mean ("Unrouteable address", "Unknown user": 5.1.1; "relay not
// permitted": 5.7.1; "Sender verify failed": 5.7.1), else the class of
// the reject (4.0.0 temporarily, 5.0.0).
func rejectDSN(temporary bool, reason string) string {
	if d := enhancedCode(reason); d != "" {
		return d
	}
	if isReply(reason) {
		if d := enhancedCode(reason[4:]); d != "" {
			return d
		}
	}
	lower := strings.ToLower(reason)
	class := "5"
	if temporary {
		class = "4"
	}
	switch {
	case strings.Contains(lower, "unrouteable address"), strings.Contains(lower, "unknown user"), strings.Contains(lower, "no such user"), strings.Contains(lower, "user unknown"):
		return class + ".1.1"
	case strings.Contains(lower, "relay not permitted"), strings.Contains(lower, "relaying denied"), strings.Contains(lower, "relay access denied"),
		strings.Contains(lower, "sender verify failed"):
		return class + ".7.1"
	}
	return class + ".0.0"
}

// rejectType decides what an ACL's reject means, as for Postfix's smtpd
// (source.RejectType): a reject after DATA is a refusal by policy, but for
// a temporary one (4xx: the spam ACL's defer on rspamd's soft reject or
// greylisting), a deferral, since the client keeps the message and
// retries it (Pending), as a milter's 4xx is for Postfix.
func rejectType(stage, dsn, reason string) mailflow.EventType {
	if stage == "DATA" && strings.HasPrefix(dsn, "4.") {
		return mailflow.EventDefer
	}
	return source.RejectType(dsn, reason, stage == "DATA")
}

// outcomeType is what a delivery, failure or deferral line means.
func outcomeType(k Kind) mailflow.EventType {
	switch k {
	case KindDelivery:
		return mailflow.EventDeliver
	case KindFail:
		return mailflow.EventFail
	}
	return mailflow.EventDefer
}

// isLocal reports whether an arrival was submitted on the mail server
// itself (P=local, local-esmtp, local-bsmtp...: a program, not a client
// on the network): its sender is the organisation's.
func isLocal(protocol, clientIP, user string) bool {
	return strings.HasPrefix(protocol, "local") || (clientIP == "" && user != "")
}

// fromOrg decides whether a message comes from the organisation: its
// client authenticated (A=), it was submitted locally, or it came from
// the machine itself (loopback, no authentication) with a sender of the
// accepted domains. A client on the network that claims an organisation
// sender without authenticating is outside (a spoofed sender is Inbound,
// not Internal).
func fromOrg(domains []string, sender string, senderKnown bool, clientIP, auth string, local bool) bool {
	switch {
	case auth != "" || local:
		return true
	case senderKnown && sender != "" && (clientIP == "" || source.IsLoopback(clientIP)):
		return source.Inside(domains, sender)
	}
	return false
}

// direction decides which way a message goes (source.Direction): unknown
// ("") until the sender is known and a recipient is.
func direction(org, senderKnown, anyIn, anyOut bool) mailflow.Direction {
	if !senderKnown {
		return ""
	}
	return source.Direction(org, anyIn, anyOut)
}

// recipientOf decides which recipient a delivery line is about: the
// address, unless it is not one (a local part, a file, a pipe: Exim logs
// "=> bob <bob@example.com>" for a local delivery, "=> /var/mail/bob
// <bob@...>", "=> |/usr/bin/prog <...>"), then its parent; and the alias
// it was expanded from (the parent, when the address is another one).
func recipientOf(addr, parent string) (rcpt, alias string) {
	a := mailflow.NormalizeAddress(addr)
	p := mailflow.NormalizeAddress(parent)
	if p == "" {
		return a, ""
	}
	if !strings.Contains(a, "@") || strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "|") || a == p {
		return p, ""
	}
	return a, p
}
