package maillab_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/maillab"
)

// sourceScenarios are what the sources beside Postfix tell (issue 16 item
// 3): what the recipient's Sieve script did, as Dovecot logs it, and what
// rspamd decided, each in the timeline of the Postfix message.
func sourceScenarios() []scenario {
	return []scenario{
		{
			name:  "sieve-reject",
			about: "the recipient's Sieve script rejects the message (250 to Postfix): Failed, Dovecot's reject after the MTA's Deliver",
			send: func(t *testing.T, l *maillab.Lab) sent {
				if err := l.SetSieve(maillab.User(62), "require [\"reject\"];\nreject \"I do not take mail from you\";\n"); err != nil {
					t.Fatal(err)
				}
				return mustSend(t, l.Send(maillab.Mail{From: "pest@remote.test", To: []string{maillab.User(62)}, Subject: "Another offer"}))
			},
			want: []want{{Rcpt: maillab.User(62), Status: mailflow.StatusFailed, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDeliver, mailflow.EventFail}}},
			truth: func(l *maillab.Lab) string {
				if n := len(l.Mailbox(maillab.User(62), "INBOX")); n != 0 {
					return fmt.Sprintf("%s's INBOX holds %d messages, want none (rejected)", maillab.User(62), n)
				}
				return ""
			},
		},
		{
			name:  "sieve-fileinto-folder",
			about: "the recipient's Sieve script files mail of a project into its folder: Delivered, the folder named",
			send: func(t *testing.T, l *maillab.Lab) sent {
				if err := l.SetSieve(maillab.User(63), `require ["fileinto", "mailbox"];
if header :contains "Subject" "Apollo" { fileinto :create "Projects"; stop; }
`); err != nil {
					t.Fatal(err)
				}
				return mustSend(t, l.Send(maillab.Mail{From: "pm@remote.test", To: []string{maillab.User(63)}, Subject: "Apollo: weekly status"}))
			},
			want: []want{{Rcpt: maillab.User(63), Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDeliver, mailflow.EventSave}, DSN: "2.0.0", Folder: "Projects"}},
		},
		{
			name: "sieve-vacation",
			about: "the recipient's Sieve script answers with a vacation reply and keeps the message: Delivered into INBOX; the reply, which " +
				"the lab's Postfix does not relay for Dovecot on loopback, a Sieve event saying so",
			send: func(t *testing.T, l *maillab.Lab) sent {
				if err := l.SetSieve(maillab.User(64), `require ["vacation"];
vacation :days 1 :addresses ["`+maillab.User(64)+`"] "I am away until Monday.";
`); err != nil {
					t.Fatal(err)
				}
				return mustSend(t, l.Send(maillab.Mail{From: "colleague@remote.test", To: []string{maillab.User(64)}, Subject: "Are you in on Friday?"}))
			},
			want: []want{{Rcpt: maillab.User(64), Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDeliver, mailflow.EventSieve}, Folder: "INBOX"}},
		},
		{
			name: "rspamd-soft-reject",
			about: "rspamd answers \"soft reject\" (as its greylisting would; 451 4.7.1 through the milter), the client to retry: " +
				"Pending with a Defer, since the sending server keeps the message and retries it (issue 16; this supersedes " +
				"EXPECTED.md #15's FilteredAsSpam for a greylisting milter-reject), rspamd's action in the timeline",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := l.Send(maillab.Mail{From: maillab.SoftRejectSender, To: []string{maillab.User(61)}, Subject: "Please retry"})
				if s.Err == nil || !strings.Contains(s.Err.Error(), "4.7.1") {
					t.Fatalf("want the end of data deferred with 4.7.1 by rspamd, got %v", s.Err)
				}
				return sent{messageID: s.MessageID}
			},
			// rspamd's line and Postfix's come in either order (two files shipped)
			want: []want{{Rcpt: maillab.User(61), Sender: maillab.SoftRejectSender, Status: mailflow.StatusPending, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDefer}, DSN: "4.7.1", Spam: "soft reject"}},
		},
	}
}

// amavisScenarios run in a lab of their own whose Postfix hands every
// message to amavis (maillab.UseAmavis): one trace across both hops, and
// amavis' verdict in it.
func amavisScenarios() []scenario {
	const boundary = "maillab-boundary-1"
	return []scenario{
		{
			name:  "amavis-clean",
			about: "the same inbound message through amavis (content_filter, re-injection on loopback): one trace across the hop, amavis' Passed CLEAN a Scan event",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"bob" + domain}, Subject: "Through the filter"}))
			},
			want: []want{{Rcpt: "bob" + domain, Sender: "sender@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Subject: "Through the filter", FromIP: maillab.OutsideIP, DSN: "2.0.0", Folder: "INBOX",
				Events: []mailflow.EventType{mailflow.EventReceive, mailflow.EventDeliver, mailflow.EventSave}}},
			truth: func(l *maillab.Lab) string {
				if !strings.Contains(readFile(l.LogFile("amavis.log")), "Passed CLEAN") {
					return "amavis logged no Passed CLEAN"
				}
				return ""
			},
		},
		{
			name:  "amavis-banned",
			about: "an attachment of a banned name (.exe): amavis blocks it (Blocked BANNED, discarded and quarantined): Quarantined, amavis' verdict and quarantine id in the timeline",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"carol" + domain}, Subject: "Your invoice",
					Headers: []string{"Content-Type: multipart/mixed; boundary=\"" + boundary + "\""},
					Body: "--" + boundary + "\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--" + boundary +
						"\r\nContent-Type: application/octet-stream; name=\"" + maillab.BannedName + "\"\r\nContent-Disposition: attachment; filename=\"" +
						maillab.BannedName + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n--" + boundary + "--\r\n"}))
				s.recipients = []string{"carol" + domain}
				return s
			},
			// Postfix's line of amavis' reply (250 2.7.0 discarded) and
			// amavis' verdict come in either order (two files shipped): the
			// verdict decides in both (postfix.filterReply)
			want: []want{{Rcpt: "carol" + domain, Status: mailflow.StatusQuarantined, Direction: mailflow.DirectionInbound,
				Spam: "Blocked BANNED", Events: []mailflow.EventType{mailflow.EventReceive, mailflow.EventQuarantine}}},
		},
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// runAmavis runs amavisScenarios in a lab of their own.
func runAmavis(t *testing.T) {
	l := maillab.Start(t)
	l.UseAmavis(t)
	for _, sc := range amavisScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			run(t, l, sc)
		})
	}
}
