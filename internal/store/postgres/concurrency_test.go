package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
)

// Concurrent appends of disjoint messages, each batch both new messages
// and the outcomes of stored ones (their rows' status changes), in the
// same hours and domains, so that appends change the same rollup keys:
// all succeed, none deadlocks (the rollups are written last, under
// the advisory lock appends share), and the rollups count every row.
func TestConcurrentAppendsChangingSharedRollups(t *testing.T) {
	st, dsn := newStore(t)
	before := deadlocks(t, dsn)
	const workers, batches, perBatch = 4, 20, 100
	// Worker w's batch b receives messages in hour (w+b) mod workers and
	// delivers those of hour (w+b-1): the hour another worker is
	// receiving in, so the rollup keys each append changes first are the
	// ones another changes last.
	msg := func(w, b, m int) (string, time.Time) {
		return fmt.Sprintf("w%d-b%d-m%d", w, b, m), D0.Add(time.Duration((w+b)%workers)*time.Hour + time.Duration(b*perBatch+m)*time.Second)
	}
	appendConcurrently(t, st, workers, batches+1, func(w, b int) []mailflow.Event {
		var evs []mailflow.Event
		for m := range perBatch {
			if b < batches { // a new message, its recipients deferred
				id, recv := msg(w, b, m)
				evs = append(evs,
					mailflow.Event{ID: "r", Time: recv, MessageTraceID: id, Sender: "s@example.org", Type: mailflow.EventReceive},
					mailflow.Event{ID: "d1", Time: recv.Add(time.Second), MessageTraceID: id, Recipient: fmt.Sprintf("a%d@d%d.example", m, m%3), Type: mailflow.EventDefer},
					mailflow.Event{ID: "d2", Time: recv.Add(time.Second), MessageTraceID: id, Recipient: fmt.Sprintf("b%d@d%d.example", m, m%5), Type: mailflow.EventDefer})
			}
			if b > 0 { // the previous batch's messages: one delivered, one bounced
				id, recv := msg(w, b-1, m)
				evs = append(evs,
					mailflow.Event{ID: "s1", Time: recv.Add(time.Minute), MessageTraceID: id, Recipient: fmt.Sprintf("a%d@d%d.example", m, m%3), Type: mailflow.EventDeliver},
					mailflow.Event{ID: "s2", Time: recv.Add(time.Minute), MessageTraceID: id, Recipient: fmt.Sprintf("b%d@d%d.example", m, m%5), Type: mailflow.EventFail})
			}
		}
		return evs
	})
	want := int64(workers * batches * perBatch)
	for _, c := range []struct {
		status mailflow.Status
		want   int64
	}{{mailflow.StatusDelivered, want}, {mailflow.StatusFailed, want}} {
		rows := sql1[int64](t, dsn, `SELECT count(*) FROM rows WHERE status = $1`, string(c.status))[0]
		rolled := sql1[int64](t, dsn, `SELECT coalesce(sum(n), 0)::bigint FROM rollup_status WHERE status = $1`, string(c.status))[0]
		if rows != c.want || rolled != c.want {
			t.Errorf("%s: %d rows, %d in the rollups, want %d", c.status, rows, rolled, c.want)
		}
	}
	if n := sql1[int64](t, dsn, `SELECT coalesce(sum(n), 0)::bigint FROM rollup_status`)[0]; n != 2*want {
		t.Errorf("the rollups count %d rows, want %d", n, 2*want)
	}
	if n := deadlocksSince(t, st, dsn, before); n != 0 {
		t.Errorf("%d deadlocks (appends ran again after them)", n)
	}
}

// appendConcurrently runs workers goroutines, each appending batch(w, b)
// for b from 0 to batches-1 in order; an error fails the test.
func appendConcurrently(t *testing.T, st *postgres.Store, workers, batches int, batch func(w, b int) []mailflow.Event) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := st.Append(context.Background(), batch(w, b)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// deadlocks is the database's count of deadlocks so far.
func deadlocks(t *testing.T, dsn string) int64 {
	return sql1[int64](t, dsn, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`)[0]
}

// deadlocksSince closes st and returns the deadlocks since before: a
// backend's counts reach pg_stat_database when it goes idle for a while
// or exits, so the pool's backends are waited out.
func deadlocksSince(t *testing.T, st *postgres.Store, dsn string, before int64) int64 {
	st.Close()
	for i := 0; i < 1000 && sql1[int64](t, dsn, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)[0] > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return deadlocks(t, dsn) - before
}
