package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// TestReadReplica runs the store on a real streaming replica (two clusters
// on loopback, the standby made by pg_basebackup -R): appends and retention
// go to the primary, traces, counts and events read the standby (what it
// has not replayed yet is not there), and ReplicaLag says how far behind it
// is: zero once it has replayed everything, more than zero while its replay
// is paused behind a write.
func TestReadReplica(t *testing.T) {
	primary, standby := pgtest.Replicated(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, primary, postgres.Options{ReplicaDSN: standby})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	if !st.HasReplica() {
		t.Fatal("HasReplica is false with a ReplicaDSN")
	}
	q := mailflow.Query{Start: D0.Add(-time.Hour), End: D0.Add(48 * time.Hour)}
	appendAll(t, st, msg("m1", D0.Add(time.Hour), "a@x.example", "b@y.example", mailflow.EventDeliver)...)
	pgtest.WaitReplayed(t, primary, standby)
	if got := trace(t, st, q); len(got) != 1 {
		t.Fatalf("trace on the replica: %v, want m1's row", got)
	}
	if lag, err := st.ReplicaLag(ctx); err != nil || lag != 0 {
		t.Fatalf("ReplicaLag of a standby that replayed everything = %v, %v; want 0", lag, err)
	}

	// Pause the standby's replay: a new append reaches the primary only.
	conn, err := pgx.Connect(ctx, standby)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	appendAll(t, st, msg("m2", D0.Add(2*time.Hour), "a@x.example", "c@y.example", mailflow.EventFail)...)
	c, err := st.Count(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 1 {
		t.Fatalf("Count read %d rows: it does not read the paused replica", c.Total)
	}
	// The primary has it all the while.
	if n := sql1[int64](t, primary, `SELECT count(*) FROM rows`)[0]; n != 2 {
		t.Fatalf("the primary holds %d rows, want 2", n)
	}
	lag, err := st.ReplicaLag(ctx)
	if err != nil && !errors.Is(err, postgres.ErrLagUnknown) {
		t.Fatal(err)
	}
	if err == nil && lag <= 0 {
		t.Fatalf("ReplicaLag of a standby paused behind a write = %v, want more than 0", lag)
	}

	// Replay again: the write arrives and the lag is gone.
	if _, err := conn.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitReplayed(t, primary, standby)
	if c, err = st.Count(ctx, q); err != nil || c.Total != 2 || c.ByStatus[mailflow.StatusFailed] != 1 {
		t.Fatalf("Count after replay = %+v, %v; want 2 rows, one Failed", c, err)
	}
	if evs, err := st.Events(ctx, "m2", "c@y.example"); err != nil || len(evs) != 2 {
		t.Fatalf("Events from the replica = %d, %v; want 2", len(evs), err)
	}
	if lag, err := st.ReplicaLag(ctx); err != nil || lag != 0 {
		t.Fatalf("ReplicaLag after replay = %v, %v; want 0", lag, err)
	}
	// Retention on the primary reaches the standby.
	if err := st.Prune(ctx, D0.Add(24*time.Hour)); err != nil {
		t.Fatalf("Prune through a store with a replica: %v", err)
	}
	pgtest.WaitReplayed(t, primary, standby)
	if got := trace(t, st, q); len(got) != 0 {
		t.Fatalf("after Prune the replica still shows %v", got)
	}
}
