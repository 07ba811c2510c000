package exim

import (
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The mail lab's Exim 4.96 lines (its own log file: no host).
const (
	labReject  = "2026-12-06 09:02:58 [6588] 1xa894-0001iG-1k H=(mail.remote.test) [203.0.113.25]:41234 F=<spammer@remote.test> rejected after DATA: 554 5.7.1 Spam message rejected"
	labSoft    = "2026-12-06 09:02:58 [6586] 1xa894-0001iE-1k H=(mail.remote.test) [203.0.113.25]:41234 F=<softreject@remote.test> temporarily rejected after DATA: 451 4.7.1 Try again later"
	labArrival = `2026-12-06 09:02:58 [6592] 1xa894-0001iK-1k <= promo@remote.test H=(mail.remote.test) [203.0.113.25]:41234 P=esmtp S=557 id=maillab-msg-981eab401093@lab.test T="You have won"`
)

// What TakeRecipients does with what another source's line names, by the
// message it names.
func TestTakeRecipients(t *testing.T) {
	cases := []struct {
		name      string
		lines     []string
		host, id  string
		messageID string
		rcpts     []string
		want      []string
	}{
		{"a refusal after DATA: a row per recipient, on rspamd's host", []string{labReject}, "mx", "1xa894-0001iG-1k", "m@x", []string{"dave@lab.test", "Erin@Lab.Test"},
			[]string{"m1: dave@lab.test FilteredAsSpam Inbound [Receive FilterAsSpam FilterAsSpam]", "m1: erin@lab.test FilteredAsSpam Inbound [Receive FilterAsSpam FilterAsSpam]"}},
		{"a temporary refusal: Pending", []string{labSoft}, "", "1xa894-0001iE-1k", "m@x", []string{"u61@lab.test"},
			[]string{"m1: u61@lab.test Pending Inbound [Receive Defer Defer]"}},
		{"another message id: nothing", []string{labReject}, "mx", "1xa894-0001iE-1k", "m@x", []string{"dave@lab.test"},
			[]string{"m1: - FilteredAsSpam  [Receive FilterAsSpam]"}},
		{"a Postfix queue id: nothing", []string{labReject}, "mx", "4F1A2B3C4D", "m@x", []string{"dave@lab.test"},
			[]string{"m1: - FilteredAsSpam  [Receive FilterAsSpam]"}},
		{"another host's message: nothing", []string{labReject}, "", "1xa894-0001iG-1k", "m@x", nil,
			[]string{"m1: - FilteredAsSpam  [Receive FilterAsSpam]"}},
		{"an accepted message: its recipients are its own lines'", []string{labArrival}, "mx", "1xa894-0001iK-1k", "m@x", []string{"u54@lab.test"},
			[]string{"m1: - GettingStatus  [Receive]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, testCfg)
			l.feed(tc.lines...)
			l.src.TakeRecipients(tc.host, tc.id, tc.messageID, tc.rcpts)
			l.drain()
			l.want(tc.want...)
			for _, e := range l.events {
				if e.Recipient != "" && e.MessageID != tc.messageID {
					t.Errorf("%s's %s: Message-ID %q, want %q", e.Recipient, e.Type, e.MessageID, tc.messageID)
				}
			}
		})
	}
	// told twice (rspamd's line replayed): once
	l := newLab(t, testCfg)
	l.feed(labReject)
	l.src.TakeRecipients("mx", "1xa894-0001iG-1k", "m@x", []string{"dave@lab.test"})
	l.src.TakeRecipients("mx", "1xa894-0001iG-1k", "m@x", []string{"dave@lab.test"})
	l.drain()
	if e := l.event(mailflow.EventFilterAsSpam, "dave@lab.test"); e.DSN != "5.7.1" || e.SMTPResponse != "554 5.7.1 Spam message rejected" {
		t.Errorf("%+v", e)
	}
}
