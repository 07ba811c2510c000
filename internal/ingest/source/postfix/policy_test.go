package postfix

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

func TestDeliveryType(t *testing.T) {
	for _, c := range []struct {
		status, daemon, response string
		filter, verdictKnown     bool
		want                     mailflow.EventType
	}{
		{"sent", "smtp", "250 ok", false, false, mailflow.EventDeliver},
		{"sent", "discard", "discarded", false, false, mailflow.EventFilterAsSpam},
		{"sent", "smtp", "250 2.0.0 Ok: queued as ABC", true, false, mailflow.EventTransfer},
		{"sent", "lmtp", "250 2.7.0 BLOCKED (FILTERID)", true, false, mailflow.EventFilterAsSpam},
		{"sent", "smtp", "250 2.7.0 Ok, discarded, id=1-2 - BANNED", true, false, mailflow.EventFilterAsSpam},
		{"sent", "smtp", "250 2.7.1 Rejected by filter", true, false, mailflow.EventFilterAsSpam},
		{"sent", "lmtp", "250 2.7.0 BLOCKED (FILTERID)", true, true, mailflow.EventTransfer}, // the filter's verdict decided
		{"deferred", "smtp", "connect timed out", false, false, mailflow.EventDefer},
		{"bounced", "smtp", "550 no such user", false, false, mailflow.EventFail},
		{"expired", "qmgr", "", false, false, mailflow.EventFail},
		{"undeliverable", "smtp", "", false, false, mailflow.EventFail},
		{"deliverable", "smtp", "", false, false, mailflow.EventSend},
	} {
		if got := deliveryType(c.status, c.daemon, c.response, c.filter, c.verdictKnown); got != c.want {
			t.Errorf("deliveryType(%q, %q, %q, %v, %v) = %s, want %s", c.status, c.daemon, c.response, c.filter, c.verdictKnown, got, c.want)
		}
	}
}

func TestActionType(t *testing.T) {
	for _, c := range []struct {
		action, stage, dsn, reason string
		want                       mailflow.EventType
	}{
		{"reject", "RCPT", "5.1.1", "550 5.1.1 <u@x>: Recipient address rejected: User unknown", mailflow.EventFail},
		{"reject", "RCPT", "5.7.1", "554 5.7.1 Relay access denied", mailflow.EventFilterAsSpam},
		{"reject", "RCPT", "4.2.2", "452 4.2.2 Mailbox full", mailflow.EventFail},
		// a temporary refusal: the sending server keeps the message and retries (Pending)
		{"reject", "RCPT", "4.1.1", "450 4.1.1 Greylisted, see http://x", mailflow.EventDefer},
		{"milter-reject", "END-OF-MESSAGE", "4.7.1", "4.7.1 Greylisting in action", mailflow.EventDefer},
		{"milter-reject", "END-OF-MESSAGE", "4.7.1", "4.7.1 Try again later", mailflow.EventDefer}, // rspamd's soft reject
		// a refusal by policy stays one when it is temporary: a spammer's retry is refused again
		{"reject", "RCPT", "4.7.1", "450 4.7.1 Client host rejected: cannot find your hostname", mailflow.EventFilterAsSpam},
		{"reject", "RCPT", "4.7.1", "454 4.7.1 <a@b>: Relay access denied", mailflow.EventFilterAsSpam},
		{"reject", "header", "4.7.1", "451 4.7.1 try later", mailflow.EventFilterAsSpam},
		// the server's own temporary trouble: the client retries (issue 16, the mail lab's insufficient-storage)
		{"reject", "RCPT", "4.3.1", "452 4.3.1 <a@b>: Sender address rejected: Insufficient system storage", mailflow.EventDefer},
		{"reject", "RCPT", "4.3.0", "451 4.3.0 <a@b>: Temporary lookup failure", mailflow.EventDefer},
		{"reject", "RCPT", "4.3.2", "421 4.3.2 Service shutting down", mailflow.EventDefer},
		{"reject", "header", "5.7.1", "550 5.7.1 spam", mailflow.EventFilterAsSpam},
		{"reject", "body", "5.1.1", "x", mailflow.EventFilterAsSpam},
		{"milter-reject", "END-OF-MESSAGE", "5.1.1", "x", mailflow.EventFilterAsSpam},
		{"hold", "header", "", "x", mailflow.EventQuarantine},
		{"milter-hold", "END-OF-MESSAGE", "", "x", mailflow.EventQuarantine},
		{"discard", "header", "", "x", mailflow.EventFilterAsSpam},
		{"milter-discard", "END-OF-MESSAGE", "", "x", mailflow.EventFilterAsSpam},
		{"redirect", "header", "", "a@b", mailflow.EventRedirect},
		{"milter-header-redirect", "END-OF-MESSAGE", "", "a@b", mailflow.EventRedirect},
	} {
		if got := actionType(c.action, c.stage, c.dsn, c.reason); got != c.want {
			t.Errorf("actionType(%q, %q, %q, %q) = %s, want %s", c.action, c.stage, c.dsn, c.reason, got, c.want)
		}
	}
}

func TestHopOrigin(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28"), netip.MustParsePrefix("2001:db8:1::/48")}
	for _, c := range []struct {
		name                               string
		sasl, clientName, clientIP, origIP string
		want                               origin
	}{
		{"from outside", "", "mail.example.net", "203.0.113.25", "", originOutside},
		{"authenticated", "erin@example.com", "unknown", "198.51.100.7", "", originInside},
		{"a program on the server itself", "", "localhost", "127.0.0.1", "", originInside},
		{"IPv6 loopback", "", "localhost", "::1", "", originInside},
		{"localhost, its address not logged", "", "localhost", "", "", originInside},
		{"a before-queue proxy naming the outside client", "", "localhost", "127.0.0.1", "203.0.113.9", originOutside},
		{"a private address is not inside (SNAT, a load balancer)", "", "unknown", "10.0.0.7", "", originOutside},
		{"no receipt line", "", "", "", "", originUnknown},
		{"in an internal network (mynetworks)", "", "app1.example.com", "192.0.2.5", "", originInside},
		{"IPv4-mapped, in an internal network", "", "app1.example.com", "::ffff:192.0.2.5", "", originInside},
		{"beside the internal network", "", "mx.example.net", "192.0.2.17", "", originOutside},
		{"IPv6 internal network", "", "app6", "2001:db8:1::7", "", originInside},
		{"a proxy naming an internal client", "", "localhost", "127.0.0.1", "192.0.2.6", originInside},
	} {
		if got := hopOrigin(nets, c.sasl, c.clientName, c.clientIP, c.origIP); got != c.want {
			t.Errorf("%s: hopOrigin = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestDirection(t *testing.T) {
	domains := []string{"example.com", "*.example.org"}
	rc := func(rs ...string) map[string]bool {
		m := map[string]bool{}
		for _, r := range rs {
			m[r] = true
		}
		return m
	}
	for _, c := range []struct {
		name        string
		from        origin
		sender      string
		senderKnown bool
		rcpts       map[string]bool
		want        mailflow.Direction
	}{
		{"in", originOutside, "a@example.net", true, rc("u@example.com"), mailflow.DirectionInbound},
		{"in to a subdomain", originOutside, "a@example.net", true, rc("u@mx.example.org"), mailflow.DirectionInbound},
		{"not the bare domain of a wildcard", originOutside, "a@example.net", true, rc("u@example.org"), mailflow.DirectionOutbound},
		// issue 16 item 4, the mail lab's spoofed-internal-sender: the
		// sender's domain decides nothing when the receipt is known
		{"an organisation sender from outside without SASL", originOutside, "ceo@example.com", true, rc("v@example.com"), mailflow.DirectionInbound},
		{"out", originInside, "u@example.com", true, rc("a@example.net"), mailflow.DirectionOutbound},
		{"out, one recipient inside", originInside, "u@EXAMPLE.com.", true, rc("a@example.net", "v@example.com"), mailflow.DirectionOutbound},
		{"internal", originInside, "u@example.com", true, rc("v@example.com"), mailflow.DirectionInternal},
		{"authenticated, a sender of another domain", originInside, "a@example.net", true, rc("b@example.net"), mailflow.DirectionOutbound},
		{"authenticated, to a colleague", originInside, "a@example.net", true, rc("v@example.com"), mailflow.DirectionInternal},
		// a message in the queue: no recipient logged yet
		{"queued, authenticated", originInside, "u@example.com", true, nil, mailflow.DirectionOutbound},
		{"queued, authenticated, sender not known yet", originInside, "", false, nil, mailflow.DirectionOutbound},
		{"queued, from outside", originOutside, "a@example.net", true, nil, mailflow.DirectionInbound},
		{"local bounce", originInside, "", true, rc("v@example.com"), mailflow.DirectionInternal},
		{"null sender from outside", originOutside, "", true, rc("v@example.com"), mailflow.DirectionInbound},
		{"relayed outside to outside", originOutside, "a@example.net", true, rc("b@example.net"), mailflow.DirectionOutbound},
		// the receipt is not in the log: the sender is all there is
		{"receipt not read, organisation sender", originUnknown, "u@example.com", true, rc("v@example.com"), mailflow.DirectionInternal},
		{"receipt not read, sender outside", originUnknown, "a@example.net", true, rc("v@example.com"), mailflow.DirectionInbound},
		{"receipt not read, sender not known yet", originUnknown, "", false, rc("u@example.com"), ""},
	} {
		if got := direction(domains, c.from, c.sender, c.senderKnown, c.rcpts, false, false); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// a trace made whole again after an eviction: its recipients are
	// flags
	if got := direction(domains, originInside, "", true, nil, true, false); got != mailflow.DirectionInternal {
		t.Errorf("evicted, inside to inside: %q", got)
	}
}

func TestIsFilterRelay(t *testing.T) {
	filters := []string{"127.0.0.1:10024", "::1:10024"}
	for _, c := range []struct {
		ip    string
		port  int
		newID string
		want  bool
	}{
		{"127.0.0.1", 10024, "", true},
		{"::1", 10024, "", true},
		{"127.0.0.1", 10025, "", false},          // a loopback relay that names no new queue id
		{"127.0.0.1", 10025, "ABCDE12345", true}, // ... and one that does
		{"192.0.2.1", 25, "ABCDE12345", false},
		{"", 0, "ABCDE12345", false},
	} {
		if got := isFilterRelay(filters, c.ip, c.port, c.newID); got != c.want {
			t.Errorf("isFilterRelay(%q, %d, %q) = %v", c.ip, c.port, c.newID, got)
		}
	}
}

// A recipient handed to a content filter gets the status of the filter's
// own verdict whatever order the filter's reply (Postfix's line) and its
// verdict line (amavis') reach the ingester in; the reply decides only
// when no verdict comes.
func TestFilterReplyEitherOrder(t *testing.T) {
	const (
		discarded = "250 2.7.0 Ok, discarded, id=1-2 - BANNED: P=p003,L=1,M=multipart/mixed"
		passed    = "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as ABC"
	)
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name     string
		reply    string
		verdict  mailflow.EventType // the verdict line's event; "" when none comes
		canWait  bool               // the reply names the filter's run
		want     mailflow.Status
		lineType mailflow.EventType // what the reply's line is in the end
	}{
		{"banned and quarantined", discarded, mailflow.EventQuarantine, true, mailflow.StatusQuarantined, mailflow.EventTransfer},
		{"blocked, not quarantined", discarded, mailflow.EventFilterAsSpam, true, mailflow.StatusFilteredAsSpam, mailflow.EventTransfer},
		{"refused, no verdict logged", discarded, "", true, mailflow.StatusFilteredAsSpam, mailflow.EventFilterAsSpam},
		{"refused, no run to wait for", "250 2.7.1 Rejected by filter", "", false, mailflow.StatusFilteredAsSpam, mailflow.EventFilterAsSpam},
		{"passed", passed, "", true, mailflow.StatusGettingStatus, mailflow.EventTransfer},
	} {
		for _, replyFirst := range []bool{true, false} {
			order := "verdict first"
			if replyFirst {
				order = "reply first"
			}
			t.Run(c.name+", "+order, func(t *testing.T) {
				// both lines of the same second, as amavis and Postfix log them
				var evs []mailflow.Event
				emit := func(typ mailflow.EventType) { evs = append(evs, mailflow.Event{Time: t0, Type: typ}) }
				verdictKnown := false
				verdictLine := func() {
					if c.verdict != "" {
						emit(c.verdict)
						verdictKnown = true
					}
				}
				if !replyFirst {
					verdictLine()
				}
				lineType, hold := filterReply(c.reply, verdictKnown, c.canWait)
				if !hold {
					emit(lineType)
				}
				if replyFirst {
					verdictLine()
				}
				if hold {
					// released by the verdict, or by the end of the wait
					lineType = heldReplyType(verdictKnown)
					emit(lineType)
				}
				if got := mailflow.DeriveStatus(evs); got != c.want || lineType != c.lineType {
					t.Errorf("status %s, the reply's line %s; want %s, %s", got, lineType, c.want, c.lineType)
				}
			})
		}
	}
}
