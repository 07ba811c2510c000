package postfix

import (
	"testing"

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
		{"reject", "RCPT", "4.1.1", "450 4.1.1 Greylisted, see http://x", mailflow.EventFilterAsSpam}, // greylisting is policy
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

func TestDirection(t *testing.T) {
	domains := []string{"example.com", "*.example.org"}
	tr := func(sender string, known, local bool, sasl string, rcpts ...string) *trace {
		t := newTrace("id", "mx")
		t.sender, t.senderKnown, t.local, t.sasl = sender, known, local, sasl
		for _, r := range rcpts {
			t.rcpts[r] = true
		}
		return t
	}
	for _, c := range []struct {
		name string
		tr   *trace
		want mailflow.Direction
	}{
		{"no recipient yet", tr("a@example.net", true, false, ""), ""},
		{"sender not known yet", tr("", false, false, "", "u@example.com"), ""},
		{"in", tr("a@example.net", true, false, "", "u@example.com"), mailflow.DirectionInbound},
		{"in to a subdomain", tr("a@example.net", true, false, "", "u@mx.example.org"), mailflow.DirectionInbound},
		{"not the bare domain of a wildcard", tr("a@example.net", true, false, "", "u@example.org"), mailflow.DirectionOutbound},
		{"out", tr("u@example.com", true, false, "", "a@example.net"), mailflow.DirectionOutbound},
		{"out, one recipient inside", tr("u@EXAMPLE.com.", true, false, "", "a@example.net", "v@example.com"), mailflow.DirectionOutbound},
		{"internal", tr("u@example.com", true, false, "", "v@example.com"), mailflow.DirectionInternal},
		{"authenticated sender outside", tr("a@example.net", true, false, "user", "b@example.net"), mailflow.DirectionOutbound},
		{"local bounce", tr("", true, true, "", "v@example.com"), mailflow.DirectionInternal},
		{"null sender from outside", tr("", true, false, "", "v@example.com"), mailflow.DirectionInbound},
		{"relayed outside to outside", tr("a@example.net", true, false, "", "b@example.net"), mailflow.DirectionOutbound},
	} {
		if got := direction(domains, c.tr); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
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
