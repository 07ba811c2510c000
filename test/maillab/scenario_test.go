package maillab_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/maillab"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

var update = flag.Bool("update", false, "rewrite the scenario table of docs/maillab.md from this run")

// TestMain lets every scenario run at once unless -parallel says otherwise:
// they wait on the lab, not on the CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "64")
	}
	pgtest.Main(m)
}

// want is one trace row a scenario expects, and the key events of its
// timeline (the row's own events and the message-level ones).
type want struct {
	Rcpt string
	// Sender is checked when set; "<>" is the null sender (a bounce).
	Sender    string
	Status    mailflow.Status
	Direction mailflow.Direction // checked when set
	// Events must all be in the row's timeline, in this order (others may
	// come between). A Scan is checked by Spam, not here: rspamd's line and
	// Postfix's of the same second reach the ingester in either order.
	Events       []mailflow.EventType
	ExpandedFrom string // checked when set
	Subject      string // checked when set
	// DSN is checked, when set, on the event that decided the status.
	DSN string
	// FromIP is checked when set: the client the message came from.
	FromIP string
	// Folder is checked when set: the mailbox folder Dovecot stored the
	// recipient's copy into, as the row says it (mailflow.Row.Folder, what
	// status.rows, the Summary CSV and the tables show), and as its latest
	// Save event does.
	Folder string
	// Spam is checked when set: the action a content scanner took
	// (rspamd's "add header", amavis' "Blocked BANNED"), from the
	// message's Scan events.
	Spam string
}

// sent says how to find what a scenario sent: its Message-ID, and the
// recipients of rows with no Message-ID of it (a rejected RCPT, a bounce).
type sent struct {
	messageID  string
	recipients []string
}

// gap is a scenario where the product's answer differs from the truth
// (the expectation), recorded until it is fixed: the test passes while the
// product answers exactly observed, logging the gap, and fails on anything
// else. When the product gives the truth, the test passes and says to
// remove the gap.
type gap struct {
	why      string
	observed []string // the rows as describe prints them
}

type scenario struct {
	name  string
	about string
	send  func(t *testing.T, l *maillab.Lab) sent
	want  []want
	// truth, when set, checks the lab itself (a mailbox, the remote MX)
	// and says what is not so yet ("" when all is).
	truth func(l *maillab.Lab) string
	gap   *gap
	// wait is how long the rows may take to match (default a minute).
	wait time.Duration
	// serial scenarios disturb the lab (they restart a component): they
	// run one at a time after the others.
	serial bool
	// ordered: the rows must come in want's order (as a trace lists them).
	ordered bool
}

const domain = "@" + maillab.Domain

// GTUBE makes rspamd reject; its variant gtubeAddHeader (rspamd's
// enable_test_patterns) makes it add its spam header instead.
const (
	gtube          = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	gtubeAddHeader = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
)

func scenarios() []scenario {
	return append(postfixScenarios(), sourceScenarios()...)
}

func postfixScenarios() []scenario {
	var fifty []string
	var fiftyWant []want
	for n := 1; n <= 50; n++ {
		fifty = append(fifty, maillab.User(n))
		fiftyWant = append(fiftyWant, want{Rcpt: maillab.User(n), Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound, Events: []mailflow.EventType{mailflow.EventDeliver}})
	}
	return []scenario{
		{
			name:  "inbound-inbox",
			about: "mail from outside to a mailbox, delivered into INBOX by Dovecot over LMTP",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"bob" + domain}, Subject: "Quarterly figures"}))
			},
			want: []want{{Rcpt: "bob" + domain, Sender: "sender@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Subject: "Quarterly figures", Events: []mailflow.EventType{mailflow.EventReceive, mailflow.EventDeliver, mailflow.EventSave},
				DSN: "2.0.0", FromIP: maillab.OutsideIP, Folder: "INBOX"}},
		},
		{
			name:  "distribution-group",
			about: "mail to a virtual alias of three members: the group's row is Expanded, each member's row Delivered",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"group" + domain}, Subject: "To the group"}))
			},
			want: []want{
				{Rcpt: "group" + domain, Status: mailflow.StatusExpanded, Direction: mailflow.DirectionInbound, Events: []mailflow.EventType{mailflow.EventExpand}},
				{Rcpt: "alice" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound, ExpandedFrom: "group" + domain, Events: []mailflow.EventType{mailflow.EventDeliver}},
				{Rcpt: "bob" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound, ExpandedFrom: "group" + domain, Events: []mailflow.EventType{mailflow.EventDeliver}},
				{Rcpt: "carol" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound, ExpandedFrom: "group" + domain, Events: []mailflow.EventType{mailflow.EventDeliver}},
			},
		},
		{
			name:  "single-alias",
			about: "mail to a virtual alias of one address: the original recipient shows a Resolve event and the final status, not Expanded",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"alias" + domain}, Subject: "To the alias"}))
			},
			want: []want{{Rcpt: "alias" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventResolve, mailflow.EventDeliver}}},
		},
		{
			name:  "outbound-delivered",
			about: "a user submits (SASL through Dovecot) to an outside address; the remote MX accepts",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit("erin"+domain, maillab.Mail{From: "erin" + domain, To: []string{"partner@remote.test"}, Subject: "Offer"}))
			},
			want: []want{{Rcpt: "partner@remote.test", Sender: "erin" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound,
				Events: []mailflow.EventType{mailflow.EventReceive, mailflow.EventDeliver}, DSN: "2.0.0", FromIP: maillab.UserIP}},
		},
		{
			name:  "outbound-deferred",
			about: "the remote MX answers 451 4.3.0 to the recipient: Pending, with a Defer",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit("erin"+domain, maillab.Mail{From: "erin" + domain, To: []string{"defer-later@remote.test"}, Subject: "Will wait"}))
			},
			want: []want{{Rcpt: "defer-later@remote.test", Status: mailflow.StatusPending, Direction: mailflow.DirectionOutbound,
				Events: []mailflow.EventType{mailflow.EventDefer}, DSN: "4.3.0"}},
		},
		{
			name:  "hard-bounce",
			about: "the remote MX answers 550 5.1.1: Failed, and the non-delivery report goes back to the sender's mailbox",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Submit("frank"+domain, maillab.Mail{From: "frank" + domain, To: []string{"nosuch-user@remote.test"}, Subject: "Lost"}))
				s.recipients = []string{"frank" + domain}
				return s
			},
			want: []want{
				{Rcpt: "nosuch-user@remote.test", Sender: "frank" + domain, Status: mailflow.StatusFailed, Direction: mailflow.DirectionOutbound,
					Events: []mailflow.EventType{mailflow.EventFail}, DSN: "5.1.1"},
				{Rcpt: "frank" + domain, Sender: "<>", Status: mailflow.StatusDelivered, Events: []mailflow.EventType{mailflow.EventDeliver}},
			},
		},
		{
			name:  "unknown-local-user",
			about: "RCPT to a mailbox that does not exist is refused (550 5.1.1, NOQUEUE): Failed",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"nosuchuser" + domain}, Subject: "Nobody home"})
				if _, ok := s.Refused["nosuchuser"+domain]; !ok || s.Err != nil {
					t.Fatalf("want RCPT refused, got %+v", s)
				}
				return sent{recipients: []string{"nosuchuser" + domain}}
			},
			want: []want{{Rcpt: "nosuchuser" + domain, Sender: "sender@remote.test", Status: mailflow.StatusFailed, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventFail}, DSN: "5.1.1"}},
		},
		{
			name:  "header-checks-hold",
			about: "a header_checks HOLD rule puts the message on hold: Quarantined",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"oscar" + domain}, Subject: "[lab-hold] please review"}))
				s.recipients = []string{"oscar" + domain}
				return s
			},
			want: []want{{Rcpt: "oscar" + domain, Status: mailflow.StatusQuarantined, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventQuarantine}}},
		},
		{
			name:  "header-checks-discard",
			about: "a header_checks DISCARD rule drops the message after accepting it (Postfix logs no message-id): FilteredAsSpam",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"peggy" + domain}, Subject: "[lab-discard] buy now"}))
				s.recipients = []string{"peggy" + domain}
				return s
			},
			want: []want{{Rcpt: "peggy" + domain, Status: mailflow.StatusFilteredAsSpam, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventFilterAsSpam}}},
		},
		{
			name:  "gtube-rejected",
			about: "rspamd (milter) rejects GTUBE at the end of data (554 5.7.1): FilteredAsSpam",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := l.Send(maillab.Mail{From: "spammer@remote.test", To: []string{"dave" + domain}, Subject: "Cheap watches", Body: gtube})
				if s.Err == nil || !strings.Contains(s.Err.Error(), "5.7.1") {
					t.Fatalf("want the end of data rejected with 5.7.1 by rspamd, got %v", s.Err)
				}
				return sent{messageID: s.MessageID}
			},
			want: []want{{Rcpt: "dave" + domain, Sender: "spammer@remote.test", Status: mailflow.StatusFilteredAsSpam, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventFilterAsSpam}, DSN: "5.7.1"}},
		},
		{
			name:  "header-checks-redirect",
			about: "a header_checks REDIRECT sends the message to another mailbox: the original recipient's row shows the Redirect and the final status, the subject kept",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{maillab.User(51)}, Subject: "[lab-redirect] for the desk"}))
			},
			want: []want{{Rcpt: maillab.User(51), Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Subject: "[lab-redirect] for the desk", Events: []mailflow.EventType{mailflow.EventRedirect, mailflow.EventDeliver}}},
		},
		{
			name:  "header-checks-reject",
			about: "a header_checks REJECT refuses the message at the end of data (550 5.7.1): FilteredAsSpam",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := l.Send(maillab.Mail{From: "sender@remote.test", To: []string{maillab.User(52)}, Subject: "[lab-reject] casino"})
				if s.Err == nil || !strings.Contains(s.Err.Error(), "5.7.1") {
					t.Fatalf("want the message rejected with 5.7.1, got %v", s.Err)
				}
				return sent{messageID: s.MessageID, recipients: []string{maillab.User(52)}}
			},
			want: []want{{Rcpt: maillab.User(52), Status: mailflow.StatusFilteredAsSpam, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventFilterAsSpam}, DSN: "5.7.1"}},
		},
		{
			name:  "outbound-deferred-then-delivered",
			about: "the remote MX defers the first attempt (451 4.3.0) and accepts the retry: Delivered, after a Defer",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit(maillab.User(57), maillab.Mail{From: maillab.User(57), To: []string{"deferonce-1@remote.test"}, Subject: "Second time lucky"}))
			},
			want: []want{{Rcpt: "deferonce-1@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound,
				Events: []mailflow.EventType{mailflow.EventDefer, mailflow.EventDeliver}, DSN: "2.0.0"}},
		},
		{
			name:  "outbound-mailbox-full",
			about: "the remote MX answers 552 5.2.2 (mailbox full): Failed, and the non-delivery report goes back to the sender",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Submit(maillab.User(53), maillab.Mail{From: maillab.User(53), To: []string{"full-box@remote.test"}, Subject: "Big attachment"}))
				s.recipients = []string{maillab.User(53)}
				return s
			},
			want: []want{
				{Rcpt: "full-box@remote.test", Status: mailflow.StatusFailed, Direction: mailflow.DirectionOutbound, Events: []mailflow.EventType{mailflow.EventFail}, DSN: "5.2.2"},
				{Rcpt: maillab.User(53), Sender: "<>", Status: mailflow.StatusDelivered, Events: []mailflow.EventType{mailflow.EventDeliver}},
			},
		},
		{
			name: "relay-denied",
			about: "a client from outside, without SASL, relaying to another outside domain is refused (554 5.7.1 Relay access denied, NOQUEUE): " +
				"FilteredAsSpam, the product's status for a refusal by policy",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := l.Send(maillab.Mail{From: "spammer@remote.test", To: []string{"relaytest@elsewhere.test"}, Subject: "Open relay?"})
				if _, ok := s.Refused["relaytest@elsewhere.test"]; !ok {
					t.Fatalf("want RCPT refused, got %+v", s)
				}
				return sent{recipients: []string{"relaytest@elsewhere.test"}}
			},
			want: []want{{Rcpt: "relaytest@elsewhere.test", Sender: "spammer@remote.test", Status: mailflow.StatusFilteredAsSpam,
				Events: []mailflow.EventType{mailflow.EventFilterAsSpam}, DSN: "5.7.1"}},
		},
		{
			name:  "mixed-recipients",
			about: "a user writes to a colleague and to an outside address in one message: two rows, both Delivered, one message Outbound",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit(maillab.User(55), maillab.Mail{From: maillab.User(55), To: []string{maillab.User(56), "partner2@remote.test"}, Subject: "Minutes"}))
			},
			want: []want{
				{Rcpt: maillab.User(56), Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound, Events: []mailflow.EventType{mailflow.EventDeliver}},
				{Rcpt: "partner2@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound, Events: []mailflow.EventType{mailflow.EventDeliver}},
			},
		},
		{
			name: "rspamd-add-header-sieve-junk",
			about: "rspamd's add-header GTUBE variant marks the message (X-Spam: Yes) and the user's Sieve script files it into Junk: " +
				"Delivered, rspamd's action and score and Dovecot's folder in the timeline",
			send: func(t *testing.T, l *maillab.Lab) sent {
				if err := l.SetSieve(maillab.User(54), `require ["fileinto", "mailbox"];
if header :contains "X-Spam" "Yes" { fileinto :create "Junk"; stop; }
`); err != nil {
					t.Fatal(err)
				}
				return mustSend(t, l.Send(maillab.Mail{From: "promo@remote.test", To: []string{maillab.User(54)}, Subject: "You have won", Body: gtubeAddHeader}))
			},
			want: []want{{Rcpt: maillab.User(54), Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDeliver, mailflow.EventSave}, DSN: "2.0.0", Spam: "add header", Folder: "Junk"}},
			truth: func(l *maillab.Lab) string {
				if n := len(l.Mailbox(maillab.User(54), "Junk")); n != 1 {
					return fmt.Sprintf("%s's Junk folder holds %d messages, want 1", maillab.User(54), n)
				}
				return ""
			},
		},
		{
			name: "outbound-expired",
			about: "the remote MX defers every attempt until the message outlives maximal_queue_lifetime (15 s in the lab): " +
				"Failed after Defers, and the non-delivery report goes back to the sender",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Submit(maillab.User(58), maillab.Mail{From: maillab.User(58), To: []string{"defer-forever@remote.test"}, Subject: "Never arrives"}))
				s.recipients = []string{maillab.User(58)}
				return s
			},
			want: []want{
				{Rcpt: "defer-forever@remote.test", Status: mailflow.StatusFailed, Direction: mailflow.DirectionOutbound,
					Events: []mailflow.EventType{mailflow.EventDefer, mailflow.EventFail}},
				{Rcpt: maillab.User(58), Sender: "<>", Status: mailflow.StatusDelivered, Events: []mailflow.EventType{mailflow.EventDeliver}},
			},
			wait: 3 * time.Minute,
		},
		{
			name: "ingester-restart",
			about: "the ingester restarts (its state file and write-ahead log kept) while a message waits for a retry, and a second message " +
				"is logged while it is down: each traced once, to its end",
			serial: true,
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Submit(maillab.User(59), maillab.Mail{From: maillab.User(59), To: []string{"deferonce-2@remote.test"}, Subject: "Across a restart"}))
				waitStatus(t, l, s.messageID, "deferonce-2@remote.test", mailflow.StatusPending)
				var during sent
				if err := l.RestartIngester(func() {
					during = mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{maillab.User(60)}, Subject: "While the ingester is down"}))
				}); err != nil {
					t.Fatal(err)
				}
				waitStatus(t, l, during.messageID, maillab.User(60), mailflow.StatusDelivered)
				return s
			},
			want: []want{{Rcpt: "deferonce-2@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound,
				Events: []mailflow.EventType{mailflow.EventDefer, mailflow.EventDeliver}}},
			wait: 2 * time.Minute,
		},
		{
			name:   "postfix-restart",
			about:  "Postfix restarts while a message waits in its deferred queue: one trace, Delivered after the restart",
			serial: true,
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Submit(maillab.User(59), maillab.Mail{From: maillab.User(59), To: []string{"deferonce-3@remote.test"}, Subject: "Across a Postfix restart"}))
				waitStatus(t, l, s.messageID, "deferonce-3@remote.test", mailflow.StatusPending)
				if err := l.RestartPostfix(); err != nil {
					t.Fatal(err)
				}
				return s
			},
			want: []want{{Rcpt: "deferonce-3@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound,
				Events: []mailflow.EventType{mailflow.EventDefer, mailflow.EventDeliver}}},
			wait: 2 * time.Minute,
		},
		{
			name:    "distribution-group-listed-first",
			about:   "a trace lists a group's row before its members' rows (virtual alias team@ to three members)",
			ordered: true,
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"team" + domain}, Subject: "To the team"}))
			},
			want: []want{
				{Rcpt: "team" + domain, Status: mailflow.StatusExpanded, Events: []mailflow.EventType{mailflow.EventExpand}},
				{Rcpt: "grace" + domain, Status: mailflow.StatusDelivered, ExpandedFrom: "team" + domain},
				{Rcpt: "heidi" + domain, Status: mailflow.StatusDelivered, ExpandedFrom: "team" + domain},
				{Rcpt: "ivan" + domain, Status: mailflow.StatusDelivered, ExpandedFrom: "team" + domain},
			},
		},
		{
			name: "alias-keeps-own-copy-member-deferred",
			about: "a virtual alias that keeps its own copy (list@ -> list@, bob@, defer-list@remote.test): list@'s row is its own copy's, " +
				"delivered into its mailbox; each member's row names list@, the outside member Pending with the remote MX's deferral",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{"list" + domain}, Subject: "To the list"}))
			},
			want: []want{
				{Rcpt: "list" + domain, Status: mailflow.StatusDelivered, Events: []mailflow.EventType{mailflow.EventDeliver}, Folder: "INBOX"},
				{Rcpt: "bob" + domain, Status: mailflow.StatusDelivered, ExpandedFrom: "list" + domain, Events: []mailflow.EventType{mailflow.EventDeliver}, Folder: "INBOX"},
				{Rcpt: "defer-list@remote.test", Status: mailflow.StatusPending, ExpandedFrom: "list" + domain, Events: []mailflow.EventType{mailflow.EventDefer}, DSN: "4.3.0"},
			},
			truth: func(l *maillab.Lab) string {
				if len(l.Mailbox("list"+domain, "INBOX")) == 0 {
					return "list@'s own copy is not in its INBOX"
				}
				return ""
			},
		},
		{
			name: "alias-keeps-own-copy-deferred",
			about: "an alias that keeps its own copy, deferred (a user writes to defer-own@remote.test, a virtual alias to itself and " +
				"carol@): its row shows its own copy's deferral by the remote MX (Pending, 4.3.0), not Expanded; carol@'s row names it",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit("erin"+domain, maillab.Mail{From: "erin" + domain, To: []string{"defer-own@remote.test"}, Subject: "Keep a copy"}))
			},
			want: []want{
				{Rcpt: "defer-own@remote.test", Status: mailflow.StatusPending, Direction: mailflow.DirectionOutbound, Events: []mailflow.EventType{mailflow.EventDefer}, DSN: "4.3.0"},
				{Rcpt: "carol" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound, ExpandedFrom: "defer-own@remote.test",
					Events: []mailflow.EventType{mailflow.EventDeliver}, Folder: "INBOX"},
			},
		},
		{
			name:  "dovecot-over-quota",
			about: "Dovecot's LMTP refuses a mailbox over its quota (552 5.2.2): Failed, with the mailbox server's reply and its own line",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "sender@remote.test", To: []string{maillab.QuotaUser}, Subject: "Large report", Body: strings.Repeat("0123456789abcdef\n", 200)}))
			},
			want: []want{{Rcpt: maillab.QuotaUser, Status: mailflow.StatusFailed, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventFail, mailflow.EventFail}, DSN: "5.2.2"}},
			truth: func(l *maillab.Lab) string {
				if n := len(l.Mailbox(maillab.QuotaUser, "INBOX")); n != 0 {
					return fmt.Sprintf("%s's INBOX holds %d messages, want none", maillab.QuotaUser, n)
				}
				return ""
			},
		},
		{
			name:  "sieve-discard",
			about: "the recipient's own Sieve script discards the message after Dovecot accepted it (250 to Postfix): FilteredAsSpam, Dovecot's discard after the MTA's Deliver",
			send: func(t *testing.T, l *maillab.Lab) sent {
				if err := l.SetSieve("victor"+domain, "discard;\n"); err != nil {
					t.Fatal(err)
				}
				return mustSend(t, l.Send(maillab.Mail{From: "ex@remote.test", To: []string{"victor" + domain}, Subject: "Let us talk again"}))
			},
			want: []want{{Rcpt: "victor" + domain, Status: mailflow.StatusFilteredAsSpam, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDeliver, mailflow.EventFilterAsSpam}, DSN: "2.0.0"}},
			truth: func(l *maillab.Lab) string {
				if n := len(l.Mailbox("victor"+domain, "INBOX")); n != 0 {
					return fmt.Sprintf("victor's INBOX holds %d messages, want none (discarded)", n)
				}
				return ""
			},
		},
		{
			name:  "insufficient-storage",
			about: "the server refuses at RCPT with its own temporary failure (452 4.3.1 Insufficient system storage, NOQUEUE): Pending, the client retries; not FilteredAsSpam",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := l.Send(maillab.Mail{From: "storage@remote.test", To: []string{"mallory" + domain}, Subject: "Disk full?"})
				if _, ok := s.Refused["mallory"+domain]; !ok {
					t.Fatalf("want RCPT refused, got %+v", s)
				}
				return sent{recipients: []string{"mallory" + domain}}
			},
			want: []want{{Rcpt: "mallory" + domain, Sender: "storage@remote.test", Status: mailflow.StatusPending, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDefer}, DSN: "4.3.1"}},
		},
		{
			name:  "outbound-partly-deferred",
			about: "one message to two outside recipients, one accepted and one deferred by the remote MX: one row Delivered, one Pending",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit(maillab.User(55), maillab.Mail{From: maillab.User(55), To: []string{"partner3@remote.test", "defer-partial@remote.test"}, Subject: "Half there"}))
			},
			want: []want{
				{Rcpt: "partner3@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound, Events: []mailflow.EventType{mailflow.EventDeliver}},
				{Rcpt: "defer-partial@remote.test", Status: mailflow.StatusPending, Direction: mailflow.DirectionOutbound, Events: []mailflow.EventType{mailflow.EventDefer}, DSN: "4.3.0"},
			},
		},
		{
			name: "loopback-client",
			about: "an application on the mail server itself hands a message to smtpd on 127.0.0.1 without SASL: delivered, Internal, " +
				"traced once a content filter's re-injection would have been linked (30 s), not after --link-wait (5 minutes)",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.SendFrom("", "", maillab.Mail{From: "app@" + maillab.Domain, To: []string{"walter" + domain}, Subject: "Nightly report"}))
			},
			want: []want{{Rcpt: "walter" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInternal, Events: []mailflow.EventType{mailflow.EventDeliver}}},
			truth: func(l *maillab.Lab) string {
				if len(l.Mailbox("walter"+domain, "INBOX")) == 0 {
					return "walter's INBOX is empty"
				}
				return ""
			},
			wait: time.Minute,
		},
		{
			name:  "fifty-recipients",
			about: "one message to 50 mailboxes: 50 rows, each Delivered",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "newsletter@remote.test", To: fifty, Subject: "Newsletter"}))
			},
			want: fiftyWant,
		},
		{
			name:  "8bit-japanese-subject",
			about: "a Japanese subject in raw UTF-8 (8BITMIME, ASCII addresses): delivered, the subject kept as sent",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "tanaka@remote.test", To: []string{"grace" + domain}, Subject: "会議の議題について", Body: "よろしくお願いします。"}))
			},
			want: []want{{Rcpt: "grace" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Subject: "会議の議題について", Events: []mailflow.EventType{mailflow.EventDeliver}}},
		},
		{
			name: "smtputf8-to-lmtp-without-it",
			about: "the same with SMTPUTF8 requested: Dovecot 2.3's LMTP does not offer SMTPUTF8, so Postfix bounces it " +
				"(5.6.7) and the non-delivery report goes to the remote sender",
			send: func(t *testing.T, l *maillab.Lab) sent {
				s := mustSend(t, l.Send(maillab.Mail{From: "yamada@remote.test", To: []string{"judy" + domain}, Subject: "見積もりの件", Body: "ご確認ください。", SMTPUTF8: true}))
				s.recipients = []string{"yamada@remote.test"}
				return s
			},
			want: []want{
				{Rcpt: "judy" + domain, Status: mailflow.StatusFailed, Direction: mailflow.DirectionInbound,
					Subject: "見積もりの件", Events: []mailflow.EventType{mailflow.EventFail, mailflow.EventNotify}, DSN: "5.6.7"},
				{Rcpt: "yamada@remote.test", Sender: "<>", Status: mailflow.StatusDelivered, Events: []mailflow.EventType{mailflow.EventDeliver}},
			},
		},
		{
			name:  "internal",
			about: "a user submits to a colleague: Internal, delivered over LMTP",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit("alice"+domain, maillab.Mail{From: "alice" + domain, To: []string{"heidi" + domain}, Subject: "Lunch?"}))
			},
			want: []want{{Rcpt: "heidi" + domain, Sender: "alice" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInternal,
				Events: []mailflow.EventType{mailflow.EventDeliver}}},
		},
		{
			name:  "spoofed-internal-sender",
			about: "mail from an outside IP, without SASL, claiming an organisation sender: Inbound, not Internal",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Send(maillab.Mail{From: "ceo" + domain, To: []string{"ivan" + domain}, Subject: "Urgent wire transfer"}))
			},
			want: []want{{Rcpt: "ivan" + domain, Sender: "ceo" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Events: []mailflow.EventType{mailflow.EventDeliver}}},
		},
		{
			name: "queued-past-pending-after",
			about: "a message still in the active queue after the ageing window (the remote MX takes 28 s to answer RCPT; the lab ingester's " +
				"--pending-after is 10 s): Pending, not GettingStatus for ever (the message's row: Postfix names a recipient only as it delivers)",
			send: func(t *testing.T, l *maillab.Lab) sent {
				return mustSend(t, l.Submit("grace"+domain, maillab.Mail{From: "grace" + domain, To: []string{"stall-1@remote.test"}, Subject: "Slow partner"}))
			},
			want: []want{{Rcpt: "", Sender: "grace" + domain, Status: mailflow.StatusPending, Direction: mailflow.DirectionOutbound,
				Events: []mailflow.EventType{mailflow.EventDefer}}},
		},
	}
}

func mustSend(t *testing.T, s maillab.Sent) sent {
	t.Helper()
	if s.Err != nil || len(s.Refused) > 0 {
		t.Fatalf("sending failed: %v, refused: %v", s.Err, s.Refused)
	}
	return sent{messageID: s.MessageID}
}

// gapSettle is how long a known gap's answer must hold before it is taken.
const gapSettle = 10 * time.Second

// result is one scenario's outcome, for docs/maillab.md.
type result struct {
	name, about        string
	expected, observed []string
	outcome            string // pass, gap, FAIL
}

var (
	resultsMu sync.Mutex
	results   []result
)

func TestScenarios(t *testing.T) {
	l := maillab.Start(t)
	t.Cleanup(func() {
		if *update {
			writeDoc(t)
		}
	})
	t.Run("mail", func(t *testing.T) {
		for _, sc := range scenarios() {
			if !sc.serial {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					run(t, l, sc)
				})
			}
		}
	})
	t.Run("restart", func(t *testing.T) {
		for _, sc := range scenarios() {
			if sc.serial {
				t.Run(sc.name, func(t *testing.T) { run(t, l, sc) })
			}
		}
	})
	t.Run("messagetrace", func(t *testing.T) { messageTraceJunk(t, l) })
	t.Run("amavis", runAmavis)
}

// waitStatus waits until the row of messageID for rcpt has status.
func waitStatus(t *testing.T, l *maillab.Lab, messageID, rcpt string, status mailflow.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		rows, err := l.Rows(ctx, mailflow.Query{MessageID: messageID, Recipients: []string{rcpt}})
		if err == nil && len(rows) == 1 && rows[0].Status == status {
			return
		}
		select {
		case <-ctx.Done():
			l.DumpGoroutines(fmt.Sprintf("waitStatus: the row of %s for %s did not become %s within a minute", messageID, rcpt, status))
			t.Fatalf("the row of %s for %s did not become %s within a minute (rows %+v, error %v)", messageID, rcpt, status, rows, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// observation is one row of the store with its timeline.
type observation struct {
	row    mailflow.Row
	events []mailflow.Event
}

func run(t *testing.T, l *maillab.Lab, sc scenario) {
	start := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	s := sc.send(t, l)
	expected := make([]string, len(sc.want))
	for i, w := range sc.want {
		expected[i] = describeWant(w)
	}
	wait := sc.wait
	if wait == 0 {
		wait = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var obs []observation
	var problems []string
	var gapSince time.Time
	for {
		if o, err := observe(ctx, l, s, start); err == nil {
			obs = o
			problems = compare(sc.want, obs)
			if sc.ordered {
				problems = append(problems, checkOrder(sc.want, obs)...)
			}
			if sc.truth != nil {
				if p := sc.truth(l); p != "" {
					problems = append(problems, "the lab: "+p)
				}
			}
			if len(problems) == 0 {
				break
			}
			// A gap is taken only once the product's answer has held for
			// gapSettle: an answer on its way to the truth (or an empty
			// one, before the rows arrive) is not the gap.
			if sc.gap != nil && slices.Equal(describeAll(obs, sc.ordered), sc.gap.observed) {
				if gapSince.IsZero() {
					gapSince = time.Now()
				}
				if time.Since(gapSince) >= gapSettle {
					break
				}
			} else {
				gapSince = time.Time{}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	observed := describeAll(obs, sc.ordered)
	r := result{name: sc.name, about: sc.about, expected: expected, observed: observed}
	switch {
	case len(problems) == 0:
		r.outcome = "pass"
		if sc.gap != nil {
			t.Logf("the known gap is closed: the product now gives the truth; remove the scenario's gap (%s)", sc.gap.why)
		}
	case sc.gap != nil && slices.Equal(observed, sc.gap.observed):
		r.outcome = "gap"
		t.Logf("KNOWN GAP (%s):\n  expected:\n    %s\n  observed:\n    %s", sc.gap.why, strings.Join(expected, "\n    "), strings.Join(observed, "\n    "))
	default:
		r.outcome = "FAIL"
		t.Errorf("the trace differs from the truth:\n  %s\n  expected:\n    %s\n  observed:\n    %s\n  (trace of Message-ID %s, recipients %v, since %s)",
			strings.Join(problems, "\n  "), strings.Join(expected, "\n    "), strings.Join(observed, "\n    "), s.messageID, s.recipients, start.Format(time.RFC3339))
	}
	resultsMu.Lock()
	results = append(results, r)
	resultsMu.Unlock()
}

// observe reads the rows of what s sent, and each row's timeline.
func observe(ctx context.Context, l *maillab.Lab, s sent, start time.Time) ([]observation, error) {
	var rows []mailflow.Row
	if s.messageID != "" {
		r, err := l.Rows(ctx, mailflow.Query{MessageID: s.messageID})
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	if len(s.recipients) > 0 {
		r, err := l.Rows(ctx, mailflow.Query{Start: start, Recipients: s.recipients})
		if err != nil {
			return nil, err
		}
		for _, row := range r {
			if s.messageID != "" && mailflow.NormalizeMessageID(row.MessageID) == mailflow.NormalizeMessageID(s.messageID) {
				continue
			}
			rows = append(rows, row)
		}
	}
	obs := make([]observation, 0, len(rows))
	for _, row := range rows {
		evs, err := l.Store.Events(ctx, row.MessageTraceID, row.Recipient)
		if err != nil {
			return nil, err
		}
		obs = append(obs, observation{row: row, events: evs})
	}
	return obs, nil
}

// compare lists how obs differs from want (nothing when it matches).
func compare(wants []want, obs []observation) []string {
	var problems []string
	used := make([]bool, len(obs))
	for _, w := range wants {
		found := -1
		for i, o := range obs {
			if !used[i] && o.row.Recipient == w.Rcpt && (w.Sender == "" || sender(o.row.Sender) == w.Sender) {
				found = i
				break
			}
		}
		if found < 0 {
			problems = append(problems, "no row for "+describeWant(w))
			continue
		}
		used[found] = true
		o := obs[found]
		var p []string
		if o.row.Status != w.Status {
			p = append(p, fmt.Sprintf("status %s, want %s", o.row.Status, w.Status))
		}
		if w.Direction != "" && o.row.Direction != w.Direction {
			p = append(p, fmt.Sprintf("direction %q, want %s", o.row.Direction, w.Direction))
		}
		if w.ExpandedFrom != "" && o.row.ExpandedFrom != w.ExpandedFrom {
			p = append(p, fmt.Sprintf("expanded from %q, want %s", o.row.ExpandedFrom, w.ExpandedFrom))
		}
		if w.FromIP != "" && o.row.FromIP != w.FromIP {
			p = append(p, fmt.Sprintf("from IP %q, want %s", o.row.FromIP, w.FromIP))
		}
		if w.Subject != "" && o.row.Subject != w.Subject {
			p = append(p, fmt.Sprintf("subject %q, want %q", o.row.Subject, w.Subject))
		}
		if !inOrder(eventTypes(o.events), w.Events) {
			p = append(p, fmt.Sprintf("events %v, want %v in this order", eventTypes(o.events), w.Events))
		}
		if w.DSN != "" {
			if d := decidingDSN(o.events); d != w.DSN {
				p = append(p, fmt.Sprintf("DSN %q, want %s", d, w.DSN))
			}
		}
		if w.Folder != "" {
			if o.row.Folder != w.Folder {
				p = append(p, fmt.Sprintf("the row's folder %q, want %s", o.row.Folder, w.Folder))
			}
			if f := folderOf(o.events); f != w.Folder {
				p = append(p, fmt.Sprintf("the folder of the latest Save %q, want %s", f, w.Folder))
			}
		}
		if w.Spam != "" {
			if a := spamOf(o.events); a != w.Spam {
				p = append(p, fmt.Sprintf("spam action %q, want %s", a, w.Spam))
			}
		}
		for _, s := range p {
			problems = append(problems, w.Rcpt+": "+s)
		}
	}
	for i, o := range obs {
		if !used[i] {
			problems = append(problems, "unexpected row "+describe(o))
		}
	}
	return problems
}

func sender(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

func eventTypes(evs []mailflow.Event) []mailflow.EventType {
	out := make([]mailflow.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// inOrder reports whether want is a subsequence of got.
func inOrder(got, want []mailflow.EventType) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// decidingDSN is the DSN of the last status-deciding event that has one
// (what the mailbox server did after the MTA's 250 has none).
func decidingDSN(evs []mailflow.Event) string {
	d := ""
	for _, e := range evs {
		if _, ok := mailflow.StatusOf(e.Type); ok && e.DSN != "" {
			d = e.DSN
		}
	}
	return d
}

// folderOf is the folder of the latest Save event.
func folderOf(evs []mailflow.Event) string { return mailflow.FolderOf(evs) }

// spamOf is the action of the latest scanner's event (a Scan, or the
// block amavis' verdict made) that did something (rspamd's "no action"
// and amavis' "Passed CLEAN" do nothing).
func spamOf(evs []mailflow.Event) string {
	a := ""
	for _, e := range evs {
		scanner := e.Source == "rspamd" || e.Source == "amavis"
		if scanner && e.Action != "" && e.Action != "no action" && e.Action != "Passed CLEAN" {
			a = e.Action
		}
	}
	return a
}

func describeWant(w want) string {
	s := fmt.Sprintf("%s %s", w.Rcpt, w.Status)
	if w.Direction != "" {
		s += " " + string(w.Direction)
	}
	if w.Sender != "" {
		s += " from " + w.Sender
	}
	if w.ExpandedFrom != "" {
		s += " via " + w.ExpandedFrom
	}
	if w.FromIP != "" {
		s += " client " + w.FromIP
	}
	if w.DSN != "" {
		s += " dsn " + w.DSN
	}
	if w.Subject != "" {
		s += fmt.Sprintf(" subject %q", w.Subject)
	}
	if w.Spam != "" {
		s += fmt.Sprintf(" spam %q", w.Spam)
	}
	if w.Folder != "" {
		s += " folder " + w.Folder
	}
	if len(w.Events) > 0 {
		s += " [" + joinTypes(w.Events) + "]"
	}
	return s
}

func describe(o observation) string {
	s := fmt.Sprintf("%s %s", o.row.Recipient, o.row.Status)
	if o.row.Direction != "" {
		s += " " + string(o.row.Direction)
	}
	s += " from " + sender(o.row.Sender)
	if o.row.ExpandedFrom != "" {
		s += " via " + o.row.ExpandedFrom
	}
	if o.row.FromIP != "" {
		s += " client " + o.row.FromIP
	}
	if d := decidingDSN(o.events); d != "" {
		s += " dsn " + d
	}
	if o.row.Subject != "" {
		s += fmt.Sprintf(" subject %q", o.row.Subject)
	}
	if a := spamOf(o.events); a != "" {
		s += fmt.Sprintf(" spam %q", a)
	}
	if o.row.Folder != "" {
		s += " folder " + o.row.Folder
	}
	if f := folderOf(o.events); f != o.row.Folder {
		s += fmt.Sprintf(" (latest Save: folder %q)", f)
	}
	return s + " [" + joinTypes(eventTypes(o.events)) + "]"
}

// describeAll describes the rows in a stable order, or as listed.
func describeAll(obs []observation, asListed bool) []string {
	out := make([]string, len(obs))
	for i, o := range obs {
		out[i] = describe(o)
	}
	if !asListed {
		sort.Strings(out)
	}
	return out
}

// checkOrder says whether the rows come in the order of wants.
func checkOrder(wants []want, obs []observation) []string {
	var got, want []string
	for _, o := range obs {
		got = append(got, o.row.Recipient)
	}
	for _, w := range wants {
		want = append(want, w.Rcpt)
	}
	if slices.Equal(got, want) {
		return nil
	}
	return []string{fmt.Sprintf("rows listed as %v, want %v", got, want)}
}

func joinTypes(ts []mailflow.EventType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

const (
	docPath  = "../../docs/maillab.md"
	docBegin = "<!-- scenarios: generated by `go test ./test/maillab -update`; do not edit -->"
	docEnd   = "<!-- end of scenarios -->"
)

// writeDoc rewrites the scenario table of docs/maillab.md.
func writeDoc(t *testing.T) {
	resultsMu.Lock()
	rs := append([]result(nil), results...)
	resultsMu.Unlock()
	order := map[string]int{}
	for i, sc := range append(scenarios(), amavisScenarios()...) {
		order[sc.name] = i
	}
	sort.Slice(rs, func(i, j int) bool { return order[rs[i].name] < order[rs[j].name] })
	var b strings.Builder
	b.WriteString(docBegin + "\n")
	b.WriteString("| # | scenario | expected rows | observed rows | result |\n|---|---|---|---|---|\n")
	for i, r := range rs {
		fmt.Fprintf(&b, "| %d | **%s**: %s | %s | %s | %s |\n", i+1, r.name, r.about, cell(r.expected), cell(r.observed), r.outcome)
	}
	b.WriteString(docEnd)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Errorf("update: %v", err)
		return
	}
	s := string(doc)
	i, j := strings.Index(s, docBegin), strings.Index(s, docEnd)
	if i < 0 || j < i {
		t.Errorf("update: %s has no %q ... %q markers", docPath, docBegin, docEnd)
		return
	}
	s = s[:i] + b.String() + s[j+len(docEnd):]
	if err := os.WriteFile(docPath, []byte(s), 0o644); err != nil {
		t.Errorf("update: %v", err)
	}
}

// cell formats rows for a table cell; long runs of rows alike but for the
// recipient are folded into one line.
func cell(rows []string) string {
	if len(rows) > 6 {
		first, last := rows[0], rows[len(rows)-1]
		rest := func(s string) string { _, r, _ := strings.Cut(s, " "); return r }
		same := true
		for _, r := range rows {
			if rest(r) != rest(first) {
				same = false
				break
			}
		}
		if same {
			return fmt.Sprintf("%d rows `%s` … `%s`: %s", len(rows), strings.Fields(first)[0], strings.Fields(last)[0], esc(rest(first)))
		}
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = esc(r)
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, "<br>")
}

func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
