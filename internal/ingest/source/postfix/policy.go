package postfix

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Policy: the decisions of the state machine that depend on nothing but
// their arguments (what an event is, which way a message goes), each with
// a table test.

// rejectType decides what an smtpd reject means (source.RejectType); the
// stage of a header or body reject is actionType's.
func rejectType(dsn, reason string) mailflow.EventType { return source.RejectType(dsn, reason, false) }

// deliveryType decides what a delivery line (status=...) means. A
// hand-over to a content filter is what filterReply says once nothing is
// waited for: a Transfer, unless the filter's reply says it refused the
// message and no verdict of the filter's own decided the recipient.
func deliveryType(status, daemon, response string, filter, verdictKnown bool) mailflow.EventType {
	switch status {
	case "sent":
		switch {
		case filter:
			typ, _ := filterReply(response, verdictKnown, false)
			return typ
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

// filterReply decides what a content filter's reply to the hand-over of a
// recipient (Postfix's delivery line to the filter, status=sent) means,
// whatever order it and the filter's own verdict line reach the ingester
// in. The verdict says more than the reply: amavis' "Blocked BANNED
// {DiscardedInbound,Quarantined}" is a quarantine, its reply "250 2.7.0
// Ok, discarded" only a refusal; and the two are logged by two programs,
// often into two files shipped apart (issue 16, the mail lab's
// amavis-banned):
//   - the verdict is known: it decided the recipient (its own event), and
//     the reply is the hand-over, a Transfer;
//   - the reply accepts the message: a Transfer;
//   - it refuses it and the verdict is not known: when the verdict can
//     still come (canWait: the reply names the filter's run), the reply is
//     held (hold true) until it comes (heldReplyType(true): a Transfer) or the
//     wait ends (heldReplyType(false)); else FilterAsSpam.
//
// So the recipient's status is the verdict's in either order.
func filterReply(response string, verdictKnown, canWait bool) (typ mailflow.EventType, hold bool) {
	if verdictKnown || !refuses(response) {
		return mailflow.EventTransfer, false
	}
	if canWait {
		return heldReplyType(false), true
	}
	return mailflow.EventFilterAsSpam, false
}

// heldReplyType is what a refusing reply held by filterReply becomes: a
// Transfer when the filter's verdict came, else FilterAsSpam (the reply's
// own word, when the verdict did not come within the wait).
func heldReplyType(verdictCame bool) mailflow.EventType {
	if verdictCame {
		return mailflow.EventTransfer
	}
	return mailflow.EventFilterAsSpam
}

// refuses reports whether a content filter's reply says it refused the
// message (" BLOCKED", "discarded", "reject").
func refuses(response string) bool {
	lower := strings.ToLower(response)
	return strings.Contains(response, " BLOCKED") || strings.Contains(lower, "discarded") || strings.Contains(lower, "reject")
}

// actionType decides what an smtpd reject or a cleanup/milter action
// means: a milter's temporary reject (4xx: rspamd's soft reject, a
// greylisting milter) is a deferral, the sending server retries; any other
// reject at the header or body stage, or by a milter, is a refusal by
// policy; others as rejectType says; a hold is a quarantine; a discard is
// FilterAsSpam; what is left redirects.
func actionType(action, stage, dsn, reason string) mailflow.EventType {
	switch action {
	case "reject", "milter-reject":
		if action == "milter-reject" && strings.HasPrefix(dsn, "4.") {
			return mailflow.EventDefer
		}
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

// origin says where a message came from, as far as its lines tell: what
// decides its direction, with the accepted domains of its recipients.
type origin uint8

const (
	// originUnknown: no line of its receipt is in the log (a file that
	// begins after it).
	originUnknown origin = iota
	// originOutside: an SMTP client on another machine, not
	// authenticated, whatever sender it claims.
	originOutside
	// originInside: an authenticated client (SASL), a submission on the
	// mail server itself (pickup: sendmail, a bounce notice) or an SMTP
	// client on the machine itself (loopback) that is not a content
	// filter's re-injection (a re-injection keeps its first hop's origin).
	originInside
)

// hopOrigin decides where a message came from by its receipt: its SASL
// login, the original client a before-queue proxy names, its client's
// address (or name, when the address is not logged): loopback or in one of
// the internal networks is inside. A private address is not inside by
// itself: behind a load balancer or SNAT every outside client is one.
func hopOrigin(nets []netip.Prefix, sasl, clientName, clientIP, origIP string) origin {
	switch {
	case sasl != "":
		return originInside
	case origIP != "" && !source.IsLoopback(origIP):
		return inNetworks(nets, origIP)
	case clientIP != "":
		if source.IsLoopback(clientIP) {
			return originInside
		}
		return inNetworks(nets, clientIP)
	case clientName == "localhost":
		return originInside
	case clientName != "":
		return originOutside
	}
	return originUnknown
}

// inNetworks is originInside for an address in one of nets, else
// originOutside.
func inNetworks(nets []netip.Prefix, ip string) origin {
	if len(nets) == 0 {
		return originOutside
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return originOutside
	}
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return originInside
		}
	}
	return originOutside
}

// direction decides which way a message goes: by where it came from, never
// by the sender it claims (a spoofed organisation sender from outside is
// Inbound), and by the accepted domains of its recipients. From inside, to
// anyone outside: Outbound; to the organisation only: Internal; recipients
// not known yet (a message in the queue): Outbound, as Exchange's
// "Originating". From outside, to the organisation: Inbound; to outside
// only: Outbound (relayed); recipients not known yet: Inbound. Only when
// the log holds nothing of its receipt is the sender's domain all there is
// (unknown, "", until the sender is known).
func direction(domains []string, from origin, sender string, senderKnown bool, rcpts map[string]bool, anyIn, anyOut bool) mailflow.Direction {
	if from == originUnknown {
		if !senderKnown {
			return ""
		}
		from = originOutside
		if sender != "" && source.Inside(domains, sender) {
			from = originInside
		}
	}
	for r := range rcpts {
		if source.Inside(domains, r) {
			anyIn = true
		} else {
			anyOut = true
		}
	}
	switch {
	case from == originInside && anyOut, from == originInside && !anyIn:
		return mailflow.DirectionOutbound
	case from == originInside:
		return mailflow.DirectionInternal
	case anyIn, !anyOut:
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
	return source.IsLoopback(relayIP) && newID != ""
}
