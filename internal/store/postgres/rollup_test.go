package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// rollupDrift lists the rollup keys whose count differs from the rows they
// count (empty when the rollups are exact).
func rollupDrift(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	const h = `received - received % 3600000000000`
	res, err := conn.Query(context.Background(), `
	WITH r AS (SELECT `+h+` AS hour, sender_domain, recipient_domain, status, direction, count(*) AS n
		FROM rows GROUP BY 1, 2, 3, 4, 5),
	d AS (SELECT * FROM rollup_domains WHERE n <> 0),
	rs AS (SELECT `+h+` AS hour, status, direction, count(*) AS n FROM rows GROUP BY 1, 2, 3),
	s AS (SELECT * FROM rollup_status WHERE n <> 0)
	SELECT format('domains %s %s>%s %s %s: rollup %s, rows %s', COALESCE(d.hour, r.hour),
		COALESCE(d.sender_domain, r.sender_domain), COALESCE(d.recipient_domain, r.recipient_domain),
		COALESCE(d.status, r.status), COALESCE(d.direction, r.direction), d.n, r.n)
	FROM d FULL JOIN r USING (hour, sender_domain, recipient_domain, status, direction)
	WHERE d.n IS DISTINCT FROM r.n
	UNION ALL
	SELECT format('status %s %s %s: rollup %s, rows %s', COALESCE(s.hour, rs.hour), COALESCE(s.status, rs.status),
		COALESCE(s.direction, rs.direction), s.n, rs.n)
	FROM s FULL JOIN rs USING (hour, status, direction)
	WHERE s.n IS DISTINCT FROM rs.n`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(res, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRollupsStayExact appends messages in pieces, in random order: rows
// appear, change status, lose their placeholder, change direction and
// sender, and move to another day when an earlier receive arrives late;
// then retention drops days and trims one. After every step each rollup key
// must hold exactly the number of rows it stands for, and Count (which
// answers from the rollups) must agree with counting the rows.
func TestRollupsStayExact(t *testing.T) {
	st, dsn := newStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(19, 1))
	outcomes := []mailflow.EventType{mailflow.EventDeliver, mailflow.EventDefer, mailflow.EventFail,
		mailflow.EventQuarantine, mailflow.EventFilterAsSpam, mailflow.EventSend, mailflow.EventExpand}
	dirs := []mailflow.Direction{mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal}
	var pending []mailflow.Event
	for m := range 200 {
		id := fmt.Sprintf("m%04d", m)
		recv := D0.Add(time.Duration(rng.IntN(5*24*60)) * time.Minute)
		sender := fmt.Sprintf("u%d@s%d.example", rng.IntN(5), rng.IntN(3))
		// the message-level facts, sometimes in two pieces
		pending = append(pending, mailflow.Event{ID: id + "-q", Time: recv, MessageTraceID: id, Type: mailflow.EventReceive, Sender: sender})
		if rng.IntN(3) == 0 {
			pending = append(pending, mailflow.Event{ID: id + "-dir", Time: recv.Add(time.Second), MessageTraceID: id,
				Type: mailflow.EventSubmit, Direction: dirs[rng.IntN(len(dirs))], Sender: sender})
		}
		for r := range 1 + rng.IntN(3) {
			rcpt := fmt.Sprintf("r%d@t%d.example", r, rng.IntN(3))
			for k := range 1 + rng.IntN(3) { // a deferral, then the outcome...
				pending = append(pending, mailflow.Event{ID: fmt.Sprintf("%s-%d-%d", id, r, k), MessageTraceID: id, Recipient: rcpt,
					Time: recv.Add(time.Duration(1+rng.IntN(600)) * time.Minute), Type: outcomes[rng.IntN(len(outcomes))]})
			}
		}
		if rng.IntN(6) == 0 { // ...and a receive from a day earlier, late: the message moves
			pending = append(pending, mailflow.Event{ID: id + "-early", Time: recv.Add(-30 * time.Hour), MessageTraceID: id,
				Type: mailflow.EventReceive, Received: recv.Add(-30 * time.Hour)})
		}
	}
	rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
	check := func(step string) {
		t.Helper()
		if d := rollupDrift(t, conn); len(d) > 0 {
			t.Fatalf("%s: the rollups drifted from the rows (%d keys), first: %v", step, len(d), d[:min(5, len(d))])
		}
		for _, q := range rollupQueries() {
			got, err := st.Count(ctx, q)
			if err != nil {
				t.Fatalf("%s: Count: %v", step, err)
			}
			want := scanCount(t, conn, q)
			if fmt.Sprint(got.ByStatus) != fmt.Sprint(want) {
				t.Fatalf("%s: Count(%+v) = %v, counting the rows gives %v", step, q, got.ByStatus, want)
			}
		}
	}
	for i := 0; i < len(pending); {
		n := min(1+rng.IntN(60), len(pending)-i)
		appendAll(t, st, pending[i:i+n]...)
		i += n
		check(fmt.Sprintf("after %d events", i))
	}
	appendAll(t, st, pending...) // idempotent: nothing changes
	check("after appending everything again")
	if err := st.Prune(ctx, D0.Add(50*time.Hour+17*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("after pruning")
}

// rollupQueries are counts the rollups answer, over ranges with partial
// hours at both ends, at one end, and none.
func rollupQueries() []mailflow.Query {
	start, end := D0.Add(-48*time.Hour), D0.Add(7*24*time.Hour)
	odd := D0.Add(37*time.Hour + 13*time.Minute)
	return []mailflow.Query{
		{Start: start, End: end},
		{Start: odd, End: end.Add(-5 * time.Minute)},
		{Start: odd, End: odd.Add(20 * time.Minute)},
		{Start: start, End: odd, Statuses: []mailflow.Status{mailflow.StatusFailed, mailflow.StatusPending}},
		{Start: start, End: end, Direction: mailflow.DirectionOutbound},
		{Start: odd, End: end, Senders: []string{"*@s1.example"}},
		{Start: start, End: odd, Recipients: []string{"*@t2.example", "*@T0.example"}, Statuses: []mailflow.Status{mailflow.StatusDelivered}},
		{Start: start, End: end, Scope: []string{"*@s2.example", "*@t1.example"}},
		{Start: start, End: end, Scope: []string{}},
	}
}

// scanCount counts q's rows per status by reading rows, in Go's terms.
func scanCount(t *testing.T, conn *pgx.Conn, q mailflow.Query) map[mailflow.Status]int64 {
	t.Helper()
	type row struct {
		Sender, SenderDomain, Recipient, RecipientDomain, Status, Direction string
	}
	res, err := conn.Query(context.Background(), `SELECT sender, sender_domain, recipient, recipient_domain, status, direction FROM rows
		WHERE received >= $1 AND received < $2`, q.Start.UnixNano(), q.End.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pgx.CollectRows(res, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	out := map[mailflow.Status]int64{}
	for _, r := range rs {
		if !q.Match(mailflow.Row{Sender: r.Sender, Recipient: r.Recipient, Status: mailflow.Status(r.Status),
			Direction: mailflow.Direction(r.Direction), Received: q.Start}) {
			continue
		}
		out[mailflow.Status(r.Status)]++
	}
	return out
}
