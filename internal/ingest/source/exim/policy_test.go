package exim

import (
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

func TestOutcomeDSN(t *testing.T) {
	cases := []struct {
		kind                 Kind
		confirmation, reason string
		want                 string
	}{
		{KindDelivery, `250 2.0.0 Ok: queued as 4F3`, "", "2.0.0"},
		{KindDelivery, `250 OK id=1vA0aa-0000Bc-Xy`, "", "2.0.0"},
		{KindDelivery, "", "", "2.0.0"},
		{KindFail, "", "SMTP error from remote mail server after RCPT TO:<x@y>: 550 5.1.1 <x@y>: User unknown", "5.1.1"},
		{KindFail, "", "LMTP error after end of data: 552 5.2.2 <trent@lab.test> Quota exceeded (mailbox for user is full)", "5.2.2"},
		{KindFail, "", "SMTP error from remote mail server after RCPT TO:<x@y>: 550 no such mailbox", "5.0.0"},
		{KindFail, "", "Unrouteable address", "5.1.1"},
		{KindFail, "", "retry timeout exceeded", "5.4.7"},
		{KindFail, "", "message too big", "5.3.4"},
		{KindFail, "", "some other trouble", "5.0.0"},
		{KindDefer, "", "SMTP error from remote mail server after RCPT TO:<x@y>: 451 4.3.0 <x@y>: try again later", "4.3.0"},
		{KindDefer, "", "SMTP error from remote mail server after RCPT TO:<x@y>: host mail.fict.example [192.168.2.1]: 451 Temporary error", "4.0.0"},
		{KindDefer, "", "retry time not reached", "4.0.0"},
		{KindDefer, "", "Connection refused", "4.0.0"},
	}
	for _, tc := range cases {
		if got := outcomeDSN(tc.kind, tc.confirmation, tc.reason); got != tc.want {
			t.Errorf("outcomeDSN(%d, %q, %q) = %q, want %q", tc.kind, tc.confirmation, tc.reason, got, tc.want)
		}
	}
}

func TestRejectDSNAndType(t *testing.T) {
	cases := []struct {
		stage     string
		temporary bool
		reason    string
		dsn       string
		typ       mailflow.EventType
	}{
		{"RCPT", false, "Unknown user", "5.1.1", mailflow.EventFail},
		{"RCPT", false, "Unrouteable address", "5.1.1", mailflow.EventFail},
		{"RCPT", false, "relay not permitted", "5.7.1", mailflow.EventFilterAsSpam},
		{"RCPT", false, "5.7.1 Relay access denied", "5.7.1", mailflow.EventFilterAsSpam},
		{"RCPT", true, "4.3.1 Insufficient system storage", "4.3.1", mailflow.EventDefer},
		{"RCPT", true, "greylisted, try again later", "4.0.0", mailflow.EventDefer}, // the client retries: Pending
		{"RCPT", false, "550 5.2.2 Mailbox full", "5.2.2", mailflow.EventFail},
		{"RCPT", false, "Sender verify failed", "5.7.1", mailflow.EventFilterAsSpam},
		{"RCPT", false, "listed at zen.spamhaus.org", "5.0.0", mailflow.EventFilterAsSpam},
		{"MAIL", false, "sender rejected", "5.0.0", mailflow.EventFilterAsSpam},
		{"DATA", false, "This message was classified as SPAM", "5.0.0", mailflow.EventFilterAsSpam},
		{"DATA", false, "5.7.1 Gtube pattern", "5.7.1", mailflow.EventFilterAsSpam},
		// the mail lab's spam ACL on rspamd's verdicts (Exim 4.96's lines)
		{"DATA", false, "554 5.7.1 Spam message rejected", "5.7.1", mailflow.EventFilterAsSpam},
		{"DATA", true, "451 4.7.1 Try again later", "4.7.1", mailflow.EventDefer}, // soft reject: the client retries
		{"DATA", true, "Please try again later", "4.0.0", mailflow.EventDefer},
	}
	for _, tc := range cases {
		dsn := rejectDSN(tc.temporary, tc.reason)
		if dsn != tc.dsn {
			t.Errorf("rejectDSN(%v, %q) = %q, want %q", tc.temporary, tc.reason, dsn, tc.dsn)
		}
		if typ := rejectType(tc.stage, dsn, tc.reason); typ != tc.typ {
			t.Errorf("rejectType(%s, %s, %q) = %s, want %s", tc.stage, dsn, tc.reason, typ, tc.typ)
		}
	}
}

func TestDirection(t *testing.T) {
	domains := []string{"lab.test", "*.corp.test"}
	cases := []struct {
		name           string
		sender         string
		senderKnown    bool
		clientIP, auth string
		local          bool
		anyIn, anyOut  bool
		want           mailflow.Direction
	}{
		{"from outside to inside", "a@remote.test", true, "203.0.113.25", "", false, true, false, mailflow.DirectionInbound},
		{"authenticated to outside", "erin@lab.test", true, "198.51.100.7", "plain:erin", false, false, true, mailflow.DirectionOutbound},
		{"authenticated to inside", "erin@lab.test", true, "198.51.100.7", "plain:erin", false, true, false, mailflow.DirectionInternal},
		{"authenticated to both", "erin@lab.test", true, "198.51.100.7", "plain:erin", false, true, true, mailflow.DirectionOutbound},
		{"a spoofed organisation sender from outside", "ceo@lab.test", true, "203.0.113.25", "", false, true, false, mailflow.DirectionInbound},
		{"an organisation sender on loopback", "app@lab.test", true, "127.0.0.1", "", false, true, false, mailflow.DirectionInternal},
		{"a subdomain's sender, locally submitted", "x@a.corp.test", true, "", "", true, false, true, mailflow.DirectionOutbound},
		{"a bounce, locally generated, to outside", "", true, "", "", true, false, true, mailflow.DirectionOutbound},
		{"relayed from outside to outside", "a@remote.test", true, "203.0.113.25", "", false, false, true, mailflow.DirectionOutbound},
		{"sender unknown", "", false, "203.0.113.25", "", false, true, false, ""},
		{"no recipient yet", "a@remote.test", true, "203.0.113.25", "", false, false, false, ""},
	}
	for _, tc := range cases {
		org := fromOrg(domains, tc.sender, tc.senderKnown, tc.clientIP, tc.auth, tc.local)
		if got := direction(org, tc.senderKnown, tc.anyIn, tc.anyOut); got != tc.want {
			t.Errorf("%s: direction %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRecipientOf(t *testing.T) {
	cases := []struct{ addr, parent, rcpt, alias string }{
		{"bob@lab.test", "", "bob@lab.test", ""},
		{"Bob@Lab.Test", "", "bob@lab.test", ""},
		{"marv", "marv@hitch.fict.example", "marv@hitch.fict.example", ""},
		{"/var/mail/bob", "bob@lab.test", "bob@lab.test", ""},
		{"|/usr/bin/procmail", "bob@lab.test", "bob@lab.test", ""},
		{"alice@lab.test", "group@lab.test", "alice@lab.test", "group@lab.test"},
		{"bob@lab.test", "BOB@lab.test", "bob@lab.test", ""},
	}
	for _, tc := range cases {
		if r, a := recipientOf(tc.addr, tc.parent); r != tc.rcpt || a != tc.alias {
			t.Errorf("recipientOf(%q, %q) = %q, %q, want %q, %q", tc.addr, tc.parent, r, a, tc.rcpt, tc.alias)
		}
	}
}
