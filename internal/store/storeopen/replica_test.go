package storeopen

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// A replica URL is refused beside a SQLite store, and a replica that cannot
// be reached is an error that does not repeat its password.
func TestReplicaURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := filepath.Join(t.TempDir(), "m.db")
	if _, err := OpenWithOptions(ctx, db, Options{ReplicaURL: "postgres://db/x"}); err == nil || !strings.Contains(err.Error(), "SQLite store has none") {
		t.Errorf("SQLite store with a replica: %v, want a refusal", err)
	}
	if _, err := OpenWithOptions(ctx, pgtest.DSN(t), Options{ReplicaURL: "sqlite:///x.db"}); err == nil || !strings.Contains(err.Error(), "postgres:// URL of a hot standby") {
		t.Errorf("a SQLite replica: %v, want a refusal", err)
	}
	_, err := OpenWithOptions(ctx, pgtest.DSN(t), Options{ReplicaURL: "postgres://mt:hunter2secret@127.0.0.1:1/x?connect_timeout=2"})
	if err == nil || strings.Contains(err.Error(), "hunter2secret") || !strings.Contains(err.Error(), "replica") {
		t.Errorf("an unreachable replica: %v, want an error naming the replica without its password", err)
	}
	st, err := OpenWithOptions(ctx, pgtest.DSN(t), Options{MaxReplicaLag: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if l, ok := st.(store.ReplicaLagger); !ok || l.MaxReplicaLag() != 5*time.Second {
		t.Errorf("MaxReplicaLag did not reach the PostgreSQL store")
	}
}
