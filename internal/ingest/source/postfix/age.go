package postfix

import (
	"fmt"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// age gives a message that has had no outcome for Config.PendingAfter (log
// time) since its first line the status Pending instead of GettingStatus
// for ever: still in the active queue (a slow or stuck delivery), or its
// outcome was never logged (a session lost after DATA, a line lost on the
// way). Each recipient with no status yet gets a Defer; a message with no
// recipient known (Postfix names them only as it delivers) gets one for
// the message, which its placeholder row takes. The event's time is the
// hop's first line plus PendingAfter, so a replay gives the same event;
// a later outcome, at a later time, supersedes it.
func (c *Source) age(m *message) {
	m.aged = true
	at := m.first.Add(c.cfg.PendingAfter)
	detail := fmt.Sprintf("no outcome logged %s after it was received: still in the queue, or its outcome was not logged", c.cfg.PendingAfter)
	defer1 := func(rcpt string) {
		e := c.newEvent(m, at, "pending-after "+m.qid, mailflow.EventDefer, rcpt, "mailtrace")
		e.Detail = detail
		c.add(m, e)
	}
	known := false
	for _, rc := range sortedKeys(m.rcpt) {
		known = true
		if m.rcpt[rc] == "" {
			put(&m.rcpt, rc, mailflow.StatusPending)
			defer1(rc)
		}
	}
	if !known && len(m.tr.rcpts) == 0 {
		defer1("")
	}
}
