package maillab_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/maillab"
)

// openSMTPDScenarios go through OpenSMTPD (maillab.Lab.UseOpenSMTPD): the
// clients on 127.0.0.1 (OpenSMTPD 6.8 knows neither XCLIENT nor PROXY v1),
// senders of the lab's domain relayed; OpenSMTPD logs no Message-ID, so
// each scenario's rows are found by their recipients.
func openSMTPDScenarios() []scenario {
	local := func(from string, to ...string) func(t *testing.T, l *maillab.Lab) sent {
		return func(t *testing.T, l *maillab.Lab) sent {
			s := l.SendFrom("", "", maillab.Mail{From: from, To: to, Subject: "Through OpenSMTPD"})
			if s.Err != nil || len(s.Refused) > 0 {
				t.Fatalf("sending failed: %v, refused: %v", s.Err, s.Refused)
			}
			return sent{recipients: to}
		}
	}
	// retried: OpenSMTPD's own backoff is minutes; the lab asks it to
	// retry the scenario's envelope (smtpctl schedule <evpid>), and only
	// once its last attempt is logged and a moment has passed: a schedule
	// while an envelope is in flight was seen to leave it unscheduled for
	// good (no retry, no expiry) on a loaded machine, and `schedule all`
	// from two scenarios at once hit the other's envelope in flight.
	retried := func(send func(t *testing.T, l *maillab.Lab) sent, extra ...string) func(t *testing.T, l *maillab.Lab) sent {
		return func(t *testing.T, l *maillab.Lab) sent {
			s := send(t, l)
			s.recipients = append(s.recipients, extra...)
			rcpt := s.recipients[0]
			waitPending(t, l, rcpt)
			stop, done := make(chan struct{}), make(chan error, 1)
			t.Cleanup(func() {
				close(stop)
				if err := <-done; err != nil {
					t.Log(err)
				}
			})
			go func() {
				var first error
				defer func() { done <- first }()
				scheduled, seen, since := 0, 0, time.Now()
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Second):
					}
					evpid, n := l.Attempts(rcpt)
					if n != seen {
						seen, since = n, time.Now() // an attempt ended: let the queue take its result
						continue
					}
					// the attempt after the last schedule is over (or, a
					// minute on, never came: ask again)
					if evpid == "" || time.Since(since) < 2*time.Second || (n <= scheduled && time.Since(since) < time.Minute) {
						continue
					}
					if err := l.Schedule(evpid); err != nil && first == nil {
						first = err
					}
					scheduled, since = n, time.Now()
				}
			}()
			return s
		}
	}
	refused := func(from, to string) func(t *testing.T, l *maillab.Lab) sent {
		return func(t *testing.T, l *maillab.Lab) sent {
			s := l.SendFrom("", "", maillab.Mail{From: from, To: []string{to}, Subject: "Refused"})
			if _, ok := s.Refused[to]; !ok {
				t.Fatalf("want RCPT refused, got %+v", s)
			}
			return sent{recipients: []string{to}}
		}
	}
	var fifty []string
	var fiftyWant []want
	for n := 1; n <= 50; n++ {
		fifty = append(fifty, maillab.User(n))
		fiftyWant = append(fiftyWant, want{Rcpt: maillab.User(n), Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound, Events: []mailflow.EventType{mailflow.EventDeliver}})
	}
	ev := func(ts ...mailflow.EventType) []mailflow.EventType { return ts }
	return []scenario{
		{name: "delivered-local", about: "mail from outside to a mailbox, delivered to Dovecot over LMTP (mda)",
			send: local("sender@remote.test", "bob"+domain),
			want: []want{{Rcpt: "bob" + domain, Sender: "sender@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInbound,
				Events: ev(mailflow.EventReceive, mailflow.EventDeliver), DSN: "2.0.0"}}},
		{name: "delivered-relayed", about: "a sender of the lab's domain to an outside address, relayed to the remote MX (mta)",
			send: local("erin"+domain, "partner@remote.test"),
			want: []want{{Rcpt: "partner@remote.test", Sender: "erin" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound,
				Events: ev(mailflow.EventReceive, mailflow.EventDeliver), DSN: "2.0.0"}}},
		{name: "internal", about: "a sender of the lab's domain to a colleague: Internal",
			send: local("alice"+domain, "heidi"+domain),
			want: []want{{Rcpt: "heidi" + domain, Sender: "alice" + domain, Status: mailflow.StatusDelivered, Direction: mailflow.DirectionInternal,
				Events: ev(mailflow.EventDeliver)}}},
		{name: "temp-failed-then-delivered", about: "the remote MX answers 451 4.3.0 (TempFail), then accepts the retry: Delivered after a Defer",
			send: retried(local("erin"+domain, "deferonce-1@remote.test")),
			want: []want{{Rcpt: "deferonce-1@remote.test", Status: mailflow.StatusDelivered, Direction: mailflow.DirectionOutbound,
				Events: ev(mailflow.EventDefer, mailflow.EventDeliver), DSN: "2.0.0"}}},
		{name: "perm-failed", about: "the remote MX answers 550 5.1.1 (PermFail): Failed",
			send: local("frank"+domain, "nosuch-user@remote.test"), wait: 90 * time.Second,
			want: []want{
				{Rcpt: "nosuch-user@remote.test", Sender: "frank" + domain, Status: mailflow.StatusFailed, Direction: mailflow.DirectionOutbound,
					Events: ev(mailflow.EventFail), DSN: "5.1.1"},
			}},
		{name: "mailbox-full", about: "the remote MX answers 552 5.2.2 (PermFail): Failed",
			send: local("carol"+domain, "full-box@remote.test"),
			want: []want{{Rcpt: "full-box@remote.test", Status: mailflow.StatusFailed, Direction: mailflow.DirectionOutbound, Events: ev(mailflow.EventFail), DSN: "5.2.2"}}},
		{name: "rejected-at-rcpt", about: "RCPT to a mailbox that does not exist is refused (550 Invalid recipient): Failed, 5.1.1",
			send: refused("sender@remote.test", "nosuchuser"+domain),
			want: []want{{Rcpt: "nosuchuser" + domain, Status: mailflow.StatusFailed, Direction: mailflow.DirectionInbound, Events: ev(mailflow.EventFail), DSN: "5.1.1"}}},
		{name: "relay-denied", about: "an outside sender relaying to an outside domain is refused (550 Invalid recipient, no rule matches): FilteredAsSpam, 5.7.1",
			send: refused("spammer@remote.test", "relaytest@elsewhere.test"),
			want: []want{{Rcpt: "relaytest@elsewhere.test", Status: mailflow.StatusFilteredAsSpam, Events: ev(mailflow.EventFilterAsSpam), DSN: "5.7.1"}}},
		{name: "expired", about: "the remote MX defers every attempt until the envelope outlives the queue's ttl (20 s): Failed after Defers",
			send: retried(local("grace"+domain, "defer-forever@remote.test")), wait: 3 * time.Minute,
			want: []want{{Rcpt: "defer-forever@remote.test", Status: mailflow.StatusFailed, Direction: mailflow.DirectionOutbound,
				Events: ev(mailflow.EventDefer, mailflow.EventFail), DSN: "5.4.7"}}},
		{name: "fifty-recipients", about: "one message to 50 mailboxes: 50 rows, each Delivered",
			send: local("newsletter@remote.test", fifty...), want: fiftyWant},
	}
}

// waitPending waits until rcpt's row (found by recipient) is Pending.
func waitPending(t *testing.T, l *maillab.Lab, rcpt string) {
	t.Helper()
	start := time.Now().Add(-time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		rows, err := l.Rows(ctx, mailflow.Query{Start: start, Recipients: []string{rcpt}})
		if err == nil && len(rows) == 1 && rows[0].Status == mailflow.StatusPending {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the row for %s did not become Pending within a minute (rows %+v, error %v)", rcpt, rows, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestOpenSMTPD runs openSMTPDScenarios through OpenSMTPD. With -update it
// writes its table into docs/maillab.md.
func TestOpenSMTPD(t *testing.T) {
	l := maillab.Start(t)
	l.UseOpenSMTPD(t)
	resultsMu.Lock()
	n0 := len(results)
	resultsMu.Unlock()
	var names []string
	for _, sc := range openSMTPDScenarios() {
		names = append(names, sc.name)
	}
	t.Cleanup(func() {
		resultsMu.Lock()
		mine := append([]result(nil), results[n0:]...)
		results = results[:n0]
		resultsMu.Unlock()
		if *update {
			writeTable(t, openSMTPDBegin, openSMTPDEnd, names, mine)
		}
	})
	t.Run("mail", func(t *testing.T) {
		for _, sc := range openSMTPDScenarios() {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				run(t, l, sc)
			})
		}
	})
}

const (
	openSMTPDBegin = "<!-- opensmtpd scenarios: generated by `go test ./test/maillab -run TestOpenSMTPD -update`; do not edit -->"
	openSMTPDEnd   = "<!-- end of opensmtpd scenarios -->"
)
