package source

import (
	"net/netip"
	"strings"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Policy every MTA source decides the same way, whatever its log says it
// in: pure functions of their arguments, with table tests.

// RejectType decides what a refusal by the receiving server (an smtpd
// reject, an Exim ACL's, an OpenSMTPD refused command) means, from its
// enhanced status code and reason: greylisting and the server's own
// temporary trouble (4.3.x: "452 4.3.1 Insufficient system storage", "451
// 4.3.0 Temporary lookup failure") are deferrals, because the sending
// server keeps the message and retries it (Pending); a refusal after DATA
// (afterData: a spam or virus scan, a content rule) is a refusal by
// policy; a recipient address that does not work (unknown user, mailbox
// full or disabled) or an oversize message failed; everything else (relay
// denied, RBL, HELO and sender checks), temporary or not, is a refusal by
// policy: FilterAsSpam.
func RejectType(dsn, reason string, afterData bool) mailflow.EventType {
	if strings.HasPrefix(dsn, "4.3.") || strings.Contains(strings.ToLower(reason), "greylist") {
		return mailflow.EventDefer
	}
	if afterData {
		return mailflow.EventFilterAsSpam
	}
	switch dsn {
	case "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "4.1.1", "4.1.2", "5.3.4", "4.2.2", "5.2.2", "5.2.1", "5.2.0":
		return mailflow.EventFail // the recipient address does not work, or the message is too big
	}
	return mailflow.EventFilterAsSpam
}

// Inside reports whether an address is in one of the accepted domains
// (Config.AcceptedDomains, lower-case; "*.example.com": every subdomain of
// example.com).
func Inside(domains []string, addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	d := strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
	for _, p := range domains {
		if sub, ok := strings.CutPrefix(p, "*."); ok {
			if len(d) > len(sub) && d[len(d)-len(sub)-1] == '.' && strings.HasSuffix(d, sub) {
				return true
			}
		} else if d == p {
			return true
		}
	}
	return false
}

// IsLoopback reports whether ip is a loopback address (an IPv4-mapped one
// too).
func IsLoopback(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && a.Unmap().IsLoopback()
}

// Direction decides which way a message goes from whether it comes from
// the organisation (org) and where its recipients are: from the
// organisation to outside Outbound, inside only Internal; from outside to
// inside Inbound, outside only Outbound (relayed); unknown ("") without a
// recipient.
func Direction(org, anyIn, anyOut bool) mailflow.Direction {
	switch {
	case !anyIn && !anyOut:
		return ""
	case org && anyOut:
		return mailflow.DirectionOutbound
	case org:
		return mailflow.DirectionInternal
	case anyIn:
		return mailflow.DirectionInbound
	}
	return mailflow.DirectionOutbound
}
