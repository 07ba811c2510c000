package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func query(t *testing.T, dsn string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDSNGivesFreshEmptyDatabases(t *testing.T) {
	a, b := pgtest.DSN(t), pgtest.DSN(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", a)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE x (i int)`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if n := query(t, a); n != 1 {
		t.Fatalf("tables in a: %d, want 1", n)
	}
	if n := query(t, b); n != 0 {
		t.Fatalf("tables in b: %d, want 0 (databases must be independent)", n)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (i int)`); err != nil {
		t.Fatal(err)
	}
	pgtest.Stop(t)
	if _, err := conn.Exec(ctx, `SELECT 1`); err == nil {
		t.Fatal("query succeeded while the server was stopped")
	}
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Fatal("connect succeeded while the server was stopped")
	}
	pgtest.Start(t)
	if n := query(t, dsn); n != 1 {
		t.Fatalf("tables after restart: %d, want 1", n)
	}
	pgtest.Restart(t)
	if n := query(t, dsn); n != 1 {
		t.Fatalf("tables after Restart: %d, want 1", n)
	}
}
