package dovecot

import (
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

func TestParse(t *testing.T) {
	cases := []struct {
		msg    string
		want   Delivery
		ok     bool
		typ    mailflow.EventType
		detail string
	}{
		{"lmtp(hola@fonotarot.cl)<2259838><Y6a3EvpUt2l+eyIAYRBqSw>: sieve: msgid=<DSNfk9FtZ1Sfslc@lin2.156.cl>: stored mail into mailbox 'INBOX'",
			Delivery{Service: "lmtp", User: "hola@fonotarot.cl", Session: "Y6a3EvpUt2l+eyIAYRBqSw", MessageID: "DSNfk9FtZ1Sfslc@lin2.156.cl", Sieve: true, Action: ActionSaved, Folder: "INBOX"},
			true, mailflow.EventSave, `stored into the mailbox folder "INBOX" by the recipient's Sieve script`},
		{"lda(kurio)<1640><8ntICTWUfmloBgAA8Bi3+g>: msgid=<64ef0110@r16.example.net>: saved mail to INBOX",
			Delivery{Service: "lda", User: "kurio", Session: "8ntICTWUfmloBgAA8Bi3+g", MessageID: "64ef0110@r16.example.net", Action: ActionSaved, Folder: "INBOX"},
			true, mailflow.EventSave, `stored into the mailbox folder "INBOX" by Dovecot lda`},
		{"lda(delta)<218><sbuvCr1ufmnaAAAA8Bi3+g>: sieve: msgid=<697e6ebc%delta@d77.jp>: fileinto action: stored mail into mailbox '10,ServerAdmin.01,jobmail'",
			Delivery{Service: "lda", User: "delta", Session: "sbuvCr1ufmnaAAAA8Bi3+g", MessageID: "697e6ebc%delta@d77.jp", Sieve: true, Action: ActionSaved, Folder: "10,ServerAdmin.01,jobmail"},
			true, mailflow.EventSave, `stored into the mailbox folder "10,ServerAdmin.01,jobmail" by the recipient's Sieve script`},
		{"lmtp(u@lab.test)<7><S1>: Info: sieve: msgid=<m@x>: marked message to be discarded if not explicitly delivered (discard action)",
			Delivery{Service: "lmtp", User: "u@lab.test", Session: "S1", MessageID: "m@x", Sieve: true, Action: ActionDiscard},
			true, mailflow.EventFilterAsSpam, "discarded by the recipient's Sieve script: marked message to be discarded if not explicitly delivered (discard action)"},
		{"lmtp(trent@lab.test)<7><S2>: Error: msgid=<m@x>: save failed to INBOX: Quota exceeded (mailbox for user is full)",
			Delivery{Service: "lmtp", User: "trent@lab.test", Session: "S2", MessageID: "m@x", Action: ActionFailed, Folder: "INBOX", Quota: true},
			true, mailflow.EventFail, `over quota: not stored into "INBOX" by Dovecot lmtp: save failed to INBOX: Quota exceeded (mailbox for user is full)`},
		{"lmtp(ah@dinhha.online)<1170861><Kye7IfrDa2St3REA8GMZgg>: sieve: msgid=<3c7c@anthanh264.site>: sent vacation response to <test2@anthanh264.site>",
			Delivery{Service: "lmtp", User: "ah@dinhha.online", Session: "Kye7IfrDa2St3REA8GMZgg", MessageID: "3c7c@anthanh264.site", Sieve: true, Action: ActionVacation, Peer: "test2@anthanh264.site"},
			true, mailflow.EventSieve, "the recipient's Sieve script sent a vacation reply to <test2@anthanh264.site>"},
		{"lmtp(u64@lab.test)<25965><+MX0FbjZFGttZQAAg+zDdQ>: Info: sieve: msgid=<m@x>: vacation action: failed to send vacation response to s@remote.test: <smtp(127.0.0.1:37809): RCPT TO failed: 554 5.7.1 <s@remote.test>: Relay access denied> (permanent error)",
			Delivery{Service: "lmtp", User: "u64@lab.test", Session: "+MX0FbjZFGttZQAAg+zDdQ", MessageID: "m@x", Sieve: true, Action: ActionVacationFailed, Peer: "s@remote.test"},
			true, mailflow.EventSieve, "the recipient's Sieve script could not send a vacation reply to <s@remote.test>: vacation action: failed to send vacation response to s@remote.test: <smtp(127.0.0.1:37809): RCPT TO failed: 554 5.7.1 <s@remote.test>: Relay access denied> (permanent error)"},
		{"lmtp(u62@lab.test)<26290><UAI6FLjZFGuyZgAAg+zDdQ>: Info: msgid=<m@x>: Permanently failed to send rejection: smtp(127.0.0.1:37809): RCPT TO failed: 554 5.7.1 <pest@remote.test>: Relay access denied",
			Delivery{Service: "lmtp", User: "u62@lab.test", Session: "UAI6FLjZFGuyZgAAg+zDdQ", MessageID: "m@x", Action: ActionRejectNotSent},
			true, mailflow.EventSieve, "the rejection could not be sent back to the sender: Permanently failed to send rejection: smtp(127.0.0.1:37809): RCPT TO failed: 554 5.7.1 <pest@remote.test>: Relay access denied"},
		{"lmtp(u62@lab.test)<26290><UAI6FLjZFGuyZgAAg+zDdQ>: Info: sieve: msgid=<m@x>: reject action: rejected message from <pest@remote.test> (reject)",
			Delivery{Service: "lmtp", User: "u62@lab.test", Session: "UAI6FLjZFGuyZgAAg+zDdQ", MessageID: "m@x", Sieve: true, Action: ActionReject, Peer: "pest@remote.test"},
			true, mailflow.EventFail, "rejected by the recipient's Sieve script: reject action: rejected message from <pest@remote.test> (reject)"},
		{"lmtp(4711, bob@lab.test): msgid=<m@x>: saved mail to INBOX",
			Delivery{Service: "lmtp", User: "bob@lab.test", MessageID: "m@x", Action: ActionSaved, Folder: "INBOX"},
			true, mailflow.EventSave, `stored into the mailbox folder "INBOX" by Dovecot lmtp`},
		{"lmtp(4711): Connect from local", Delivery{}, false, "", ""},
		{"imap(bob)<1><x>: Logged out in=1 out=2", Delivery{}, false, "", ""},
	}
	for _, c := range cases {
		got, ok := Parse(c.msg)
		if ok != c.ok {
			t.Errorf("%s: ok %v", c.msg, ok)
			continue
		}
		if !ok {
			continue
		}
		got.Text = ""
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.msg, got, c.want)
		}
		d, _ := Parse(c.msg)
		e, ok := Event(d)
		if !ok || e.Type != c.typ || e.Detail != c.detail {
			t.Errorf("%s: event %v %+v", c.msg, ok, e)
		}
	}
	if !IsDelivery("lmtp(u)<1><s>: msgid=<m>: saved mail to INBOX") || IsDelivery("lmtp(1): Connect from local") || IsDelivery("imap-login: Login: user=<u>") {
		t.Error("IsDelivery")
	}
}
