package storetest

import (
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Mid-string wildcards (a `*` before any usable literal prefix, not a
// plain `*@domain`): an adapter may answer them from an index of its own
// (PostgreSQL's table of distinct addresses, migration 00006), which must
// know every address a row holds, however the row got it.

// A recipient's LIKE metacharacters are literal, as a sender's are.
func testMidWildcardRecipients(t *testing.T, f *fixture) {
	f.append(
		receive("w1", "s@example.net", at(0)), deliver("w1", `a%b_c\d@example.net`, at(1)),
		receive("w2", "s@example.net", at(2)), deliver("w2", "axbycd@example.net", at(3)),
		receive("w3", "s@example.net", at(4)), deliver("w3", "ab_c@example.net", at(5)),
	)
	f.expectKeys(recipients("*b*c*@example.net"), `w3 ab_c@example.net`, `w2 axbycd@example.net`, `w1 a%b_c\d@example.net`)
	f.expectKeys(recipients("*%b*"), `w1 a%b_c\d@example.net`)
	f.expectKeys(recipients("*b_c*"), `w3 ab_c@example.net`, `w1 a%b_c\d@example.net`)
	f.expectKeys(recipients("*_c@*"), `w3 ab_c@example.net`)
	f.expectKeys(recipients(`*\d@*`), `w1 a%b_c\d@example.net`)
	f.expectKeys(recipients(`*\\d@*`))
	f.expectKeys(recipients("*%*"), `w1 a%b_c\d@example.net`)
	f.expectKeys(recipients("*x*y*"), `w2 axbycd@example.net`)
	f.expectKeys(recipients("*X*Y*"), `w2 axbycd@example.net`)
	f.expectKeys(recipients("*%x*"))
	// The recipient side only: the sender's address does not make a row match.
	f.expectKeys(recipients("*s@example.n*"))
	f.expectKeys(senders("*s@example.n*"), `w3 ab_c@example.net`, `w2 axbycd@example.net`, `w1 a%b_c\d@example.net`)
	// In a scope, on either side.
	f.expectKeys(scoped(day(), "*b_c*"), `w3 ab_c@example.net`, `w1 a%b_c\d@example.net`)
	f.expectKeys(scoped(day(), "*s@ex*"), `w3 ab_c@example.net`, `w2 axbycd@example.net`, `w1 a%b_c\d@example.net`)
	f.expectKeys(scoped(recipients("*x*y*"), "*b_c*"))
}

// A sender learnt in a later append (the message stored before it had
// none), then replaced by another, is what the wildcards find.
func testMidWildcardLateSender(t *testing.T, f *fixture) {
	f.append(ev("l1", "", mailflow.EventReceive, at(0)), deliver("l1", "rc%pt@example.org", at(1)))
	f.expectKeys(senders("*"), "l1 rc%pt@example.org")
	f.expectKeys(senders("*e%s_nd*"))
	late := ev("l1", "", mailflow.EventSubmit, at(2))
	late.Sender = "Late%S_nder@Example.org"
	f.append(ev("l1", "rc%pt@example.org", mailflow.EventSend, at(2)), late)
	f.expectKeys(senders("*e%s_nd*"), "l1 rc%pt@example.org")
	f.expectKeys(senders("*e%s*nd*"), "l1 rc%pt@example.org")
	f.expectKeys(senders("*E%S_ND*"), "l1 rc%pt@example.org")
	f.expectKeys(senders("*e%sXnd*"))
	f.expectKeys(recipients("*c%p*"), "l1 rc%pt@example.org")
	later := ev("l1", "", mailflow.EventSubmit, at(3))
	later.Sender = "other@example.org"
	f.append(later)
	f.expectKeys(senders("*e%s_nd*"))
	f.expectKeys(senders("*th*r@*"), "l1 rc%pt@example.org")
	// A new recipient of the stored message, and its placeholder-free rows.
	f.append(deliver("l1", "Second_Rcpt@example.org", at(4)))
	f.expectKeys(recipients("*d_r*"), "l1 second_rcpt@example.org")
	f.expectKeys(recipients("*"), "l1 rc%pt@example.org", "l1 second_rcpt@example.org")
}

// Retention: an address whose rows are gone matches nothing, and matches
// again when a new message brings it back.
func testMidWildcardAfterPrune(t *testing.T, f *fixture) {
	old := at(-3 * 24 * 60)
	f.append(receive("p1", "gone@example.org", old), deliver("p1", "keep@example.org", old.Add(time.Second)),
		receive("p2", "stays@example.org", at(0)), deliver("p2", "keep@example.org", at(1)))
	all := mailflow.Query{Start: old.Add(-time.Hour), End: T0.Add(24 * time.Hour)}
	with := func(mod func(*mailflow.Query)) mailflow.Query { q := all; mod(&q); return q }
	f.expectKeys(with(func(q *mailflow.Query) { q.Senders = []string{"*on*@*"} }), "p1 keep@example.org")
	f.expectKeys(with(func(q *mailflow.Query) { q.Recipients = []string{"*ee*"} }), "p2 keep@example.org", "p1 keep@example.org")
	if err := f.st.Prune(f.ctx, T0.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.expectKeys(with(func(q *mailflow.Query) { q.Senders = []string{"*on*@*"} }))
	f.expectKeys(with(func(q *mailflow.Query) { q.Recipients = []string{"*ee*"} }), "p2 keep@example.org")
	f.append(receive("p3", "gone@example.org", at(5)), deliver("p3", "new@example.org", at(6)))
	f.expectKeys(with(func(q *mailflow.Query) { q.Senders = []string{"*on*@*"} }), "p3 new@example.org")
}
