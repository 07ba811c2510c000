package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
)

// addresses is the addresses table (migration 00006) as "role address"
// lines, sorted.
func addresses(t *testing.T, dsn string) []string {
	t.Helper()
	return sql1[string](t, dsn, `SELECT role::text || ' ' || address FROM addresses ORDER BY 1`)
}

// Append adds every sender and recipient of its rows to the addresses
// table, and "" for both (a message without a sender, a placeholder), once.
func TestAppendAddsItsAddresses(t *testing.T) {
	st, dsn := newStore(t)
	recv := D0.Add(time.Hour)
	ev := func(id, mtid, rcpt, sender string, typ mailflow.EventType) mailflow.Event {
		return mailflow.Event{ID: id, Time: recv, MessageTraceID: mtid, Recipient: rcpt, Sender: sender, Type: typ}
	}
	appendAll(t, st,
		ev("r1", "m1", "", "<A@Example.com>", mailflow.EventReceive),
		ev("d1", "m1", "Bob@example.com", "", mailflow.EventDeliver),
		ev("r2", "m2", "", "", mailflow.EventReceive),
	)
	appendAll(t, st,
		ev("d2", "m2", "bob@example.com", "", mailflow.EventDeliver),
		ev("s2", "m2", "", "c@example.com", mailflow.EventSubmit),
		ev("d3", "m1", "a@example.com", "", mailflow.EventDeliver),
	)
	want := []string{"r ", "r a@example.com", "r bob@example.com", "s ", "s a@example.com", "s c@example.com"}
	if got := addresses(t, dsn); !slices.Equal(got, want) {
		t.Errorf("addresses:\n got  %q\n want %q", got, want)
	}
}

// Migration 00006 fills the addresses table from the rows stored before
// it, drops the rows' trigram indexes for one on the addresses, and its
// Down puts them back.
func TestAddressesMigrationFillsFromStoredRows(t *testing.T) {
	ctx := context.Background()
	st, dsn := newStore(t)
	recv := D0.Add(time.Hour)
	ev := func(id, mtid, rcpt, sender string, typ mailflow.EventType) mailflow.Event {
		return mailflow.Event{ID: id, Time: recv, MessageTraceID: mtid, Recipient: rcpt, Sender: sender, Type: typ}
	}
	appendAll(t, st,
		ev("r1", "m1", "", "x7@d01.example", mailflow.EventReceive),
		ev("d1", "m1", "u1@corp.example", "", mailflow.EventDeliver),
		ev("d2", "m1", "u2@corp.example", "", mailflow.EventDeliver),
		ev("r2", "m2", "", "y8@d02.example", mailflow.EventReceive),
	)
	st.Close()
	indexes := func() []string {
		return sql1[string](t, dsn, `SELECT relname::text FROM pg_class WHERE relname IN
			('rows_sender_trgm', 'rows_recipient_trgm', 'addresses_trgm') ORDER BY 1`)
	}
	if got := indexes(); !slices.Equal(got, []string{"addresses_trgm"}) {
		t.Fatalf("trigram indexes after 00006: %q, want only addresses_trgm", got)
	}

	migrateDownTo(t, ctx, dsn, 5)
	if got := indexes(); !slices.Equal(got, []string{"rows_recipient_trgm", "rows_sender_trgm"}) {
		t.Fatalf("trigram indexes after 00006's Down: %q, want the rows' two", got)
	}

	// up again, as an upgrade opens it
	st = open(t, dsn)
	want := []string{"r ", "r u1@corp.example", "r u2@corp.example", "s x7@d01.example", "s y8@d02.example"}
	if got := addresses(t, dsn); !slices.Equal(got, want) {
		t.Errorf("addresses after the migration:\n got  %q\n want %q", got, want)
	}
	if got := indexes(); !slices.Equal(got, []string{"addresses_trgm"}) {
		t.Errorf("trigram indexes after 00006 again: %q, want only addresses_trgm", got)
	}
	q := mailflow.Query{Start: D0, End: D0.Add(24 * time.Hour), Senders: []string{"*7@d0*.example"}}
	if got := trace(t, st, q); !slices.Equal(got, []string{"m1 u1@corp.example Delivered", "m1 u2@corp.example Delivered"}) {
		t.Errorf("trace %v: %q", q.Senders, got)
	}
}

// A mid-string wildcard reads the addresses table and the rows' btree
// index on the address, not a trigram index of rows (there is none).
func TestMidWildcardSQLReadsTheAddresses(t *testing.T) {
	q := mailflow.Query{Start: D0, End: D0.Add(24 * time.Hour), Senders: []string{"*7@d0*.example"}, Recipients: []string{"*x*", "u*"}}
	sqlText, _, err := postgres.TraceSQL(q, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`sender = ANY(ARRAY(SELECT a.address FROM addresses a WHERE a.role = 's' AND (a.address LIKE $3 ESCAPE '\')))`,
		`recipient = ANY(ARRAY(SELECT a.address FROM addresses a WHERE a.role = 'r' AND (a.address LIKE $4 ESCAPE '\' OR a.address LIKE $5 ESCAPE '\')))`,
	} {
		if !strings.Contains(sqlText, want) {
			t.Errorf("trace SQL lacks %s:\n%s", want, sqlText)
		}
	}
	// a literal prefix of 4 characters or with the '@' is a range of the btree index
	q = mailflow.Query{Start: D0, End: D0.Add(24 * time.Hour), Senders: []string{"alice*"}}
	if sqlText, _, _ = postgres.TraceSQL(q, 10); !strings.Contains(sqlText, `(sender LIKE $3 ESCAPE '\')`) || strings.Contains(sqlText, "addresses") {
		t.Errorf("trace SQL of alice*:\n%s", sqlText)
	}
}

// Concurrent appends of disjoint messages that bring the same new
// addresses, in different orders, all succeed without a deadlock (the
// addresses are inserted in one order, before any other lock but the
// messages').
func TestConcurrentAppendsOfSharedNewAddresses(t *testing.T) {
	st, dsn := newStore(t)
	before := deadlocks(t, dsn)
	const workers, batches, perBatch = 8, 15, 100
	rngs := make([]*rand.Rand, workers)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 7))
	}
	appendConcurrently(t, st, workers, batches, func(w, b int) []mailflow.Event {
		rng := rngs[w]
		var evs []mailflow.Event
		for m := range perBatch {
			mtid := fmt.Sprintf("w%d-b%d-m%d", w, b, m)
			recv := D0.Add(time.Duration(b*perBatch+m) * time.Second)
			// the same few new addresses per batch round, in a random order
			s := fmt.Sprintf("s%d-%d@example.org", b, rng.IntN(200))
			r := fmt.Sprintf("r%d-%d@example.org", b, rng.IntN(200))
			evs = append(evs,
				mailflow.Event{ID: "r", Time: recv, MessageTraceID: mtid, Sender: s, Type: mailflow.EventReceive},
				mailflow.Event{ID: "d", Time: recv.Add(time.Second), MessageTraceID: mtid, Recipient: r, Type: mailflow.EventDeliver})
		}
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		return evs
	})
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM rows`)[0]; n != workers*batches*perBatch {
		t.Errorf("%d rows, want %d", n, workers*batches*perBatch)
	}
	// every row's addresses are in the table
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM rows r WHERE NOT EXISTS (SELECT 1 FROM addresses a WHERE a.role = 's' AND a.address = r.sender)
		OR NOT EXISTS (SELECT 1 FROM addresses a WHERE a.role = 'r' AND a.address = r.recipient)`)[0]; n != 0 {
		t.Errorf("%d rows with an address missing from the addresses table", n)
	}
	if n := deadlocksSince(t, st, dsn, before); n != 0 {
		t.Errorf("%d deadlocks (appends ran again after them)", n)
	}
}

// A Store sends an append's addresses only when it has not stored them
// before (the table is never pruned): what it knows is not asked again,
// and another Store (another ingester) asks for itself.
func TestAppendSendsOnlyAddressesNotKnown(t *testing.T) {
	st, dsn := newStore(t)
	recv := D0.Add(time.Hour)
	msg := func(mtid, sender, rcpt string) []mailflow.Event {
		return []mailflow.Event{
			{ID: "r", Time: recv, MessageTraceID: mtid, Sender: sender, Type: mailflow.EventReceive},
			{ID: "d", Time: recv, MessageTraceID: mtid, Recipient: rcpt, Type: mailflow.EventDeliver},
		}
	}
	appendAll(t, st, msg("m1", "a@example.com", "b@example.com")...)
	sql1[int64](t, dsn, `WITH d AS (DELETE FROM addresses RETURNING 1) SELECT count(*) FROM d`)
	appendAll(t, st, msg("m2", "a@example.com", "b@example.com")...)
	if got := addresses(t, dsn); len(got) != 0 {
		t.Errorf("addresses sent again by the Store that stored them: %q", got)
	}
	appendAll(t, open(t, dsn), msg("m3", "a@example.com", "c@example.com")...)
	want := []string{"r ", "r c@example.com", "s ", "s a@example.com"}
	if got := addresses(t, dsn); !slices.Equal(got, want) {
		t.Errorf("addresses from another Store:\n got  %q\n want %q", got, want)
	}
}

// A pattern that matches more addresses than are worth probing finds the
// same rows, by trace, count and stream.
func TestMidWildcardMatchingManyAddresses(t *testing.T) {
	ctx := context.Background()
	st, dsn := newStore(t)
	sql1[int64](t, dsn, `WITH i AS (INSERT INTO addresses SELECT 'u' || g || 'zq@example.org', 's' FROM generate_series(1, 1500) g RETURNING 1)
		SELECT count(*) FROM i`)
	recv := D0.Add(time.Hour)
	for i, s := range []string{"a.zq@example.com", "other@example.com", "u7zq@example.org"} {
		mtid := fmt.Sprintf("m%d", i)
		appendAll(t, st, mailflow.Event{ID: "r", Time: recv.Add(time.Duration(i) * time.Second), MessageTraceID: mtid, Sender: s, Type: mailflow.EventReceive},
			mailflow.Event{ID: "d", Time: recv.Add(time.Duration(i) * time.Second), MessageTraceID: mtid, Recipient: "rc@example.net", Type: mailflow.EventDeliver})
	}
	q := mailflow.Query{Start: D0, End: D0.Add(24 * time.Hour), Senders: []string{"*zq*"}}
	want := []string{"m2 rc@example.net Delivered", "m0 rc@example.net Delivered"}
	if got := trace(t, st, q); !slices.Equal(got, want) {
		t.Errorf("trace: %q, want %q", got, want)
	}
	if c, err := st.Count(ctx, q); err != nil || c.Total != 2 {
		t.Errorf("count: %+v, %v; want 2", c, err)
	}
	var streamed []string
	if err := st.Stream(ctx, q, "", func(r *mailflow.Row) error { streamed = append(streamed, r.MessageTraceID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(streamed, []string{"m2", "m0"}) {
		t.Errorf("stream: %q", streamed)
	}
}
