package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// D0 is midnight of the first day the focused tests use.
var D0 = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newStore(t *testing.T) (*postgres.Store, string) {
	dsn := pgtest.DSN(t)
	return open(t, dsn), dsn
}

// withAppName returns dsn (a URL or keyword/value string) with the
// connections' application_name set to app.
func withAppName(dsn, app string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			v := u.Query()
			v.Set("application_name", app)
			u.RawQuery = v.Encode()
			return u.String()
		}
	}
	return dsn + " application_name=" + app
}

func sql1[T any](t *testing.T, dsn, q string, args ...any) []T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rs, err := conn.Query(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rs, pgx.RowTo[T])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func partitions(t *testing.T, dsn, parent string) []string {
	t.Helper()
	return sql1[string](t, dsn, `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass ORDER BY 1`, parent)
}

func msg(id string, recv time.Time, sender, rcpt string, outcome mailflow.EventType) []mailflow.Event {
	evs := []mailflow.Event{{ID: id + "-r", Time: recv, MessageTraceID: id, Type: mailflow.EventReceive, Sender: sender, Subject: "s " + id}}
	if rcpt != "" {
		evs = append(evs, mailflow.Event{ID: id + "-o", Time: recv.Add(time.Minute), MessageTraceID: id, Recipient: rcpt, Type: outcome})
	}
	return evs
}

func appendAll(t *testing.T, st store.Store, evs ...mailflow.Event) {
	t.Helper()
	if err := st.Append(context.Background(), evs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func trace(t *testing.T, st store.Store, q mailflow.Query) []string {
	t.Helper()
	var out []string
	var cur mailflow.Cursor
	for {
		p, err := st.Trace(context.Background(), q, cur, 2)
		if err != nil {
			t.Fatalf("Trace: %v", err)
		}
		for _, r := range p.Rows {
			out = append(out, fmt.Sprintf("%s %s %s", r.MessageTraceID, r.Recipient, r.Status))
		}
		if p.Next == "" {
			return out
		}
		cur = p.Next
	}
}

func span(days int) mailflow.Query {
	return mailflow.Query{Start: D0.Add(-24 * time.Hour), End: D0.Add(time.Duration(days) * 24 * time.Hour)}
}

func TestDailyPartitionsAreCreatedOnDemand(t *testing.T) {
	st, dsn := newStore(t)
	if got := partitions(t, dsn, "rows"); len(got) != 0 {
		t.Fatalf("partitions before any append: %v", got)
	}
	var evs []mailflow.Event
	for d := 0; d < 3; d++ {
		evs = append(evs, msg(fmt.Sprintf("m%d", d), D0.Add(time.Duration(d)*24*time.Hour+time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
	}
	appendAll(t, st, evs...)
	want := []string{"rows_p20260310", "rows_p20260311", "rows_p20260312"}
	if got := partitions(t, dsn, "rows"); !slices.Equal(got, want) {
		t.Errorf("rows partitions %v, want %v", got, want)
	}
	if got := partitions(t, dsn, "events"); len(got) != 3 {
		t.Errorf("events partitions %v, want 3", got)
	}
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM pg_partitioned_table WHERE partdefid <> 0`)[0]; n != 0 {
		t.Errorf("%d partitioned tables have a default partition", n)
	}
	// A second store (another process) finds them and appends to them.
	st2 := open(t, dsn)
	appendAll(t, st2, msg("n1", D0.Add(2*time.Hour), "a@x.example", "c@y.example", mailflow.EventDefer)...)
	got := trace(t, st2, span(3))
	wantRows := []string{"m2 b@y.example Delivered", "m1 b@y.example Delivered", "n1 c@y.example Pending", "m0 b@y.example Delivered"}
	if !slices.Equal(got, wantRows) {
		t.Errorf("trace %q, want %q", got, wantRows)
	}
}

func TestPruneDropsWholeDaysAndTrimsTheBoundaryDay(t *testing.T) {
	st, dsn := newStore(t)
	var evs []mailflow.Event
	for d := 0; d < 3; d++ {
		base := D0.Add(time.Duration(d) * 24 * time.Hour)
		evs = append(evs, msg(fmt.Sprintf("d%d-early", d), base.Add(6*time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
		evs = append(evs, msg(fmt.Sprintf("d%d-late", d), base.Add(20*time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
	}
	appendAll(t, st, evs...)
	cutoff := D0.Add(24*time.Hour + 12*time.Hour) // noon of the second day
	if err := st.Prune(context.Background(), cutoff); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if got, want := partitions(t, dsn, "rows"), []string{"rows_p20260311", "rows_p20260312"}; !slices.Equal(got, want) {
		t.Errorf("rows partitions after prune %v, want %v", got, want)
	}
	if got, want := partitions(t, dsn, "events"), []string{"events_p20260311", "events_p20260312"}; !slices.Equal(got, want) {
		t.Errorf("events partitions after prune %v, want %v", got, want)
	}
	got := trace(t, st, span(3))
	want := []string{"d2-late b@y.example Delivered", "d2-early b@y.example Delivered", "d1-late b@y.example Delivered"}
	if !slices.Equal(got, want) {
		t.Errorf("trace after prune %q, want %q", got, want)
	}
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM messages`)[0]; n != 3 {
		t.Errorf("%d messages left, want 3", n)
	}
	evts, err := st.Events(context.Background(), "d1-early", "b@y.example")
	if err != nil || len(evts) != 0 {
		t.Errorf("events of a pruned message: %v, %v", evts, err)
	}
	// Appending to a pruned day again recreates its partition (the cache is not stale).
	appendAll(t, st, msg("again", D0.Add(time.Hour), "a@x.example", "b@y.example", mailflow.EventFail)...)
	if got := trace(t, st, mailflow.Query{Start: D0, End: D0.Add(24 * time.Hour)}); !slices.Equal(got, []string{"again b@y.example Failed"}) {
		t.Errorf("trace of the recreated day: %q", got)
	}
}

func TestMigrationsRunTwiceAndConcurrently(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
			if err == nil {
				err = st.Ping(context.Background())
				st.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	st := open(t, dsn) // and once more, on a migrated database
	appendAll(t, st, msg("m", D0.Add(time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`)[0]; n != int64(len(files)) {
		t.Errorf("%d migrations recorded, want %d", n, len(files))
	}
}

func TestLateReceiveMovesTheMessageToItsDay(t *testing.T) {
	st, dsn := newStore(t)
	recv := D0.Add(-10 * time.Minute) // 23:50 the day before D0
	appendAll(t, st, mailflow.Event{ID: "o", Time: D0.Add(10 * time.Minute), MessageTraceID: "late", Recipient: "B@Y.example", Type: mailflow.EventDeliver, ToIP: "10.0.0.1"})
	if got := sql1[string](t, dsn, `SELECT tableoid::regclass::text FROM rows`); !slices.Equal(got, []string{"rows_p20260310"}) {
		t.Fatalf("row first lands in %v", got)
	}
	appendAll(t, st, mailflow.Event{ID: "r", Time: recv, MessageTraceID: "late", Type: mailflow.EventReceive, Sender: "A@X.example", Subject: "Hi"})
	if got := sql1[string](t, dsn, `SELECT tableoid::regclass::text FROM rows`); !slices.Equal(got, []string{"rows_p20260309"}) {
		t.Errorf("row after the late Receive is in %v, want rows_p20260309", got)
	}
	if got := sql1[string](t, dsn, `SELECT DISTINCT tableoid::regclass::text FROM events`); !slices.Equal(got, []string{"events_p20260309"}) {
		t.Errorf("events after the late Receive are in %v, want events_p20260309", got)
	}
	p, err := st.Trace(context.Background(), mailflow.Query{Start: D0.Add(-24 * time.Hour), End: D0, Senders: []string{"*@x.EXAMPLE"}}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 1 {
		t.Fatalf("trace of the earlier day: %+v", p.Rows)
	}
	r := p.Rows[0]
	if !r.Received.Equal(recv) || r.Sender != "a@x.example" || r.Recipient != "b@y.example" || r.Status != mailflow.StatusDelivered || r.Subject != "Hi" || r.ToIP != "10.0.0.1" {
		t.Errorf("row %+v", r)
	}
	evs, err := st.Events(context.Background(), "late", "b@y.example")
	if err != nil || len(evs) != 2 || evs[0].Type != mailflow.EventReceive || evs[1].Type != mailflow.EventDeliver {
		t.Errorf("Events: %+v, %v", evs, err)
	}
	// Replaying both changes nothing.
	appendAll(t, st, evs...)
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM events`)[0]; n != 2 {
		t.Errorf("%d events after replay, want 2", n)
	}
}

func TestConcurrentAppendsOfTheSameEventsStoreThemOnce(t *testing.T) {
	st, dsn := newStore(t)
	var evs []mailflow.Event
	for i := 0; i < 50; i++ {
		evs = append(evs, msg(fmt.Sprintf("m%02d", i), D0.Add(time.Duration(i)*time.Minute), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			mine := slices.Clone(evs)
			if g%2 == 1 {
				slices.Reverse(mine)
			}
			if err := st.Append(context.Background(), mine); err != nil {
				t.Errorf("Append: %v", err)
			}
		}(g)
	}
	wg.Wait()
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM events`)[0]; n != 100 {
		t.Errorf("%d events, want 100", n)
	}
	if n := sql1[int64](t, dsn, `SELECT count(*) FROM rows`)[0]; n != 50 {
		t.Errorf("%d rows, want 50", n)
	}
}

func TestStoreDownThenBack(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	appendAll(t, st, msg("m", D0.Add(time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
	// The pool holds connections the restart kills; the first calls after it
	// must not fail because of them.
	pgtest.Restart(t)
	if got := trace(t, st, span(1)); len(got) != 1 {
		t.Errorf("trace right after a restart: %q", got)
	}
	pgtest.Restart(t)
	appendAll(t, st, msg("k", D0.Add(3*time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)

	pgtest.Stop(t)
	if err := st.Ping(ctx); err == nil {
		t.Error("Ping succeeded with the server stopped")
	}
	if err := st.Append(ctx, msg("n", D0.Add(2*time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)); err == nil {
		t.Error("Append succeeded with the server stopped")
	}
	if _, err := st.Trace(ctx, span(1), "", 10); err == nil {
		t.Error("Trace succeeded with the server stopped")
	}
	pgtest.Start(t)
	if err := st.Ping(ctx); err != nil {
		t.Errorf("Ping after restart: %v", err)
	}
	appendAll(t, st, msg("n", D0.Add(2*time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
	if got := trace(t, st, span(1)); len(got) != 3 {
		t.Errorf("after restart: %q", got)
	}
}

// TestStreamResumesWhenItsConnectionIsKilled kills the backend sending a
// stream in the middle of it (pg_terminate_backend, as a restart or a
// failover would): Stream resumes after the last row it gave, on a new
// connection, and the caller sees every row exactly once.
//
// The kill targets exactly the stream's backend: the store under test
// connects with its own application_name, and of its connections only the
// one running the stream's query is an active client backend. Two kinds of
// look-alikes once made this test kill one backend too many: the pool's idle
// connections keep the text of their last query (the paging Trace's), and
// the parallel workers of the stream's query show its text and
// application_name while they run (backend_type 'parallel worker'). A
// backend is killed only while it waits to write rows the client has not
// read (so the kill surely interrupts the stream, whatever the socket
// buffers hold), and the test waits until it has exited, so that one on its
// way out is never taken for the resumed stream's.
func TestStreamResumesWhenItsConnectionIsKilled(t *testing.T) {
	const app = "mailtrace-stream-kill-test"
	dsn := pgtest.DSN(t)
	// Over the Unix socket: its buffers stay about 200 KiB, so the backend
	// surely blocks sending while the test holds the stream (over loopback
	// TCP the client's buffer grows to 32 MiB here, all the rows fit, the
	// backend finishes early and there is nothing left to interrupt).
	sdsn, unix := pgtest.UnixDSN(t, dsn)
	if !unix {
		t.Log("an external server: the stream connects over TCP, whose buffers may hold every row")
	}
	st := open(t, withAppName(sdsn, app))
	ctx := context.Background()
	// Enough rows that the server is still sending (blocked on a full
	// socket) when the stream is a thousand rows in.
	if err := storetest.SeedBench(ctx, st, 40000); err != nil {
		t.Fatal(err)
	}
	q := mailflow.Query{Start: storetest.BenchEnd.Add(-90 * 24 * time.Hour), End: storetest.BenchEnd}
	var want []string
	var cur mailflow.Cursor
	for {
		p, err := st.Trace(ctx, q, cur, 5000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rows {
			want = append(want, r.MessageTraceID+" "+r.Recipient)
		}
		if cur = p.Next; cur == "" {
			break
		}
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// blocked returns the pid of the store's backend running the stream's
	// query once it waits to write to the client (wait_event ClientWrite), or
	// 0 when no backend runs the query (between a kill and the resume, or
	// after the last row was sent). It is called from the stream's callback:
	// the client reads nothing meanwhile, so a backend with rows left to
	// send fills the socket and blocks there, and stays blocked until killed.
	// Killing a backend blocked there loses rows it has not sent, so the
	// stream must resume to give them.
	blocked := func() (int32, error) {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			rs, err := admin.Query(ctx, `SELECT pid, coalesce(wait_event, '') FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = $1 AND state = 'active'
				AND backend_type = 'client backend' AND query LIKE 'SELECT received,%'`, app)
			if err != nil {
				return 0, err
			}
			type backend struct {
				Pid       int32
				WaitEvent string
			}
			bs, err := pgx.CollectRows(rs, pgx.RowToStructByPos[backend])
			switch {
			case err != nil:
				return 0, err
			case len(bs) > 1:
				return 0, fmt.Errorf("%d backends of the store run the stream's query (%v), want at most 1", len(bs), bs)
			case len(bs) == 0:
				return 0, nil
			case bs[0].WaitEvent == "ClientWrite":
				return bs[0].Pid, nil
			case time.Now().After(deadline):
				return 0, fmt.Errorf("backend %d still not blocked writing to the client after a minute (wait event %q)", bs[0].Pid, bs[0].WaitEvent)
			}
		}
	}
	// kill terminates pid and waits until it has exited, so that a backend
	// still on its way out is never taken for the resumed stream's.
	kill := func(pid int32) error {
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			return fmt.Errorf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			var n int
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("backend %d still there a minute after pg_terminate_backend", pid)
			}
		}
	}
	var got []string
	var killed []int32 // the stream's backends killed with rows left to send
	err = st.Stream(ctx, q, "", func(r *mailflow.Row) error {
		got = append(got, r.MessageTraceID+" "+r.Recipient)
		// Every 100 rows, kill the backend serving the stream once it is
		// blocked sending, twice in all. Early in each connection, while
		// the kernel's socket buffers are still small (they grow as the
		// client reads), so that what the client drains after a kill is a
		// few hundred rows and the resumed query has tens of thousands
		// left: more than the buffers can hold, so it blocks too.
		if len(got)%100 != 0 || len(killed) == 2 {
			return nil
		}
		pid, err := blocked()
		if err != nil || pid == 0 {
			return err
		}
		if slices.Contains(killed, pid) {
			return fmt.Errorf("backend %d, killed, still serves the stream", pid)
		}
		killed = append(killed, pid)
		return kill(pid)
	})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if len(killed) != 2 {
		t.Fatalf("killed the stream's backends %v; want 2 killed while sending (the test did not interrupt the stream twice)", killed)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Stream across two killed connections gave %d rows, paging %d; they differ", len(got), len(want))
	}
}
