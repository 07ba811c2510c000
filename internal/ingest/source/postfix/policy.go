package postfix

import (
	"strconv"
	"strings"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Policy: the decisions of the state machine that depend on nothing but
// their arguments (what an event is, which way a message goes), each with
// a table test.

// rejectType decides what a reject means: a recipient address that does not
// work (unknown user, mailbox full or disabled) or an oversize message
// failed; the server's own temporary trouble (4.3.x: "452 4.3.1
// Insufficient system storage", "451 4.3.0 Temporary lookup failure") is a
// deferral, the client retries; everything else (relay denied, RBL, HELO
// and sender checks, greylisting, spam, milters) is a refusal by policy:
// FilterAsSpam.
func rejectType(dsn, reason string) mailflow.EventType {
	if strings.Contains(strings.ToLower(reason), "greylist") {
		return mailflow.EventFilterAsSpam
	}
	if strings.HasPrefix(dsn, "4.3.") {
		return mailflow.EventDefer
	}
	switch dsn {
	case "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "4.1.1", "4.1.2", "5.3.4", "4.2.2", "5.2.2", "5.2.1", "5.2.0":
		return mailflow.EventFail // the recipient address does not work, or the message is too big
	}
	return mailflow.EventFilterAsSpam
}

// deliveryType decides what a delivery line (status=...) means. A
// hand-over to a content filter is a Transfer, unless the filter's reply
// says it refused the message (" BLOCKED", "discarded", "reject") and no
// verdict of the filter's own decided the recipient already.
func deliveryType(status, daemon, response string, filter, verdictKnown bool) mailflow.EventType {
	switch status {
	case "sent":
		switch {
		case filter:
			if verdictKnown {
				return mailflow.EventTransfer
			}
			lower := strings.ToLower(response)
			if strings.Contains(response, " BLOCKED") || strings.Contains(lower, "discarded") || strings.Contains(lower, "reject") {
				return mailflow.EventFilterAsSpam
			}
			return mailflow.EventTransfer
		case daemon == "discard":
			return mailflow.EventFilterAsSpam
		default:
			return mailflow.EventDeliver
		}
	case "deferred":
		return mailflow.EventDefer
	case "bounced", "expired", "undeliverable":
		return mailflow.EventFail
	default: // "deliverable" and other address verification probes
		return mailflow.EventSend
	}
}

// actionType decides what an smtpd reject or a cleanup/milter action
// means: a reject at the header or body stage, or by a milter, is a
// refusal by policy; others as rejectType says; a hold is a quarantine; a
// discard is FilterAsSpam; what is left redirects.
func actionType(action, stage, dsn, reason string) mailflow.EventType {
	switch action {
	case "reject", "milter-reject":
		if stage == "header" || stage == "body" || strings.HasPrefix(action, "milter") {
			return mailflow.EventFilterAsSpam
		}
		return rejectType(dsn, reason)
	case "hold", "milter-hold":
		return mailflow.EventQuarantine
	case "discard", "milter-discard":
		return mailflow.EventFilterAsSpam
	default: // redirect, milter-header-redirect
		return mailflow.EventRedirect
	}
}

// inside reports whether an address is in one of the accepted domains.
func inside(domains []string, a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return false
	}
	d := strings.ToLower(strings.TrimSuffix(a[at+1:], "."))
	for _, p := range domains {
		if sub, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(d, "."+sub) {
				return true
			}
		} else if d == p {
			return true
		}
	}
	return false
}

// direction decides which way a message goes, from its sender, its
// recipients and whether it came from inside (authenticated, or local with
// the null sender): unknown ("") until both sender and a recipient are
// known.
func direction(domains []string, tr *trace) mailflow.Direction {
	if (len(tr.rcpts) == 0 && !tr.anyIn && !tr.anyOut) || !tr.senderKnown {
		return ""
	}
	org := tr.org || tr.sasl != "" || (tr.sender == "" && tr.local) || (tr.sender != "" && inside(domains, tr.sender))
	anyIn, anyOut := tr.anyIn, tr.anyOut
	for r := range tr.rcpts {
		if inside(domains, r) {
			anyIn = true
		} else {
			anyOut = true
		}
	}
	switch {
	case org && anyOut:
		return mailflow.DirectionOutbound
	case org:
		return mailflow.DirectionInternal
	case anyIn:
		return mailflow.DirectionInbound
	default:
		return mailflow.DirectionOutbound // relayed from outside to outside
	}
}

// isFilterRelay reports whether a relay is a content filter: one of the
// configured ones, or any loopback relay whose reply names a new queue id.
func isFilterRelay(filters []string, relayIP string, relayPort int, newID string) bool {
	if relayIP == "" {
		return false
	}
	hp := relayIP + ":" + strconv.Itoa(relayPort)
	for _, f := range filters {
		if f == hp {
			return true
		}
	}
	return isLoopback(relayIP) && newID != ""
}
