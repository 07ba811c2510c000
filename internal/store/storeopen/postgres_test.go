package storeopen

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A postgres:// URL opens a working store on a real PostgreSQL.
func TestOpenPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, u.String())
	if err != nil {
		t.Fatalf("Open(%s): %v", Redact(u.String()), err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Second)
	if err := st.Append(ctx, []mailflow.Event{{Time: now, MessageTraceID: "m1", Type: mailflow.EventReceive, Sender: "a@example.com"}}); err != nil {
		t.Fatal(err)
	}
	c, err := st.Count(ctx, mailflow.Query{Start: now.Add(-time.Hour), End: now.Add(time.Hour)})
	if err != nil || c.Total != 1 {
		t.Fatalf("Count = %+v, %v; want 1 row", c, err)
	}
}
