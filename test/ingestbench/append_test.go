package ingestbench

import (
	"context"
	"crypto/sha256"

	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// denseEvents are the events of message i as the Postfix source emits them
// for denseLog's messages: received, a deferral, two deliveries. Trace IDs
// are hashes, as the sources derive them (postfix: 20 hex digits of a
// SHA-256), so that they land at random places of the indexes keyed by
// them, as a real ingest's do; a counter would append at their ends.
func denseEvents(i int, t0 time.Time) []mailflow.Event {
	sum := sha256.Sum256(strconv.AppendInt(nil, int64(i), 10))
	id := hex.EncodeToString(sum[:10])
	t := t0.Add(time.Duration(i) * time.Millisecond)
	r1, r2 := fmt.Sprintf("user%d@example.org", i%20000), fmt.Sprintf("other%d@example.com", i%7000)
	return []mailflow.Event{
		{ID: id + "-rx", Time: t, MessageTraceID: id, Type: mailflow.EventReceive, Source: "smtpd",
			Sender: fmt.Sprintf("sender%d@example.net", i%5000), MessageID: fmt.Sprintf("%d.dense@example.net", i),
			Size: int64(2000 + i%90000), Direction: mailflow.DirectionInbound, FromIP: "192.0.2.7", OriginalClientIP: "192.0.2.7"},
		{ID: id + "-d1", Time: t.Add(time.Second), MessageTraceID: id, Recipient: r1, Type: mailflow.EventDefer, Source: "smtp",
			DSN: "4.4.1", Relay: "mx.example.org[198.51.100.7]:25", Detail: "connect to mx.example.org[198.51.100.7]:25: Connection timed out"},
		{ID: id + "-s2", Time: t.Add(time.Second), MessageTraceID: id, Recipient: r2, Type: mailflow.EventDeliver, Source: "smtp",
			DSN: "2.0.0", Relay: "mx.example.com[203.0.113.9]:25", SMTPResponse: "250 2.0.0 Ok: queued as X", ToIP: "203.0.113.9"},
		{ID: id + "-s1", Time: t.Add(3 * time.Second), MessageTraceID: id, Recipient: r1, Type: mailflow.EventDeliver, Source: "smtp",
			DSN: "2.0.0", Relay: "mx.example.org[198.51.100.7]:25", SMTPResponse: "250 2.0.0 Ok: queued as Y", ToIP: "198.51.100.7"},
	}
}

// benchAppend appends b.N batches of batch events (whole messages, the
// receipt and the outcomes in the same batch, as a backfill gives them) and
// reports events per second of wall time.
func benchAppend(b *testing.B, st store.Appender, batch int) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	msg := 0
	evs := make([]mailflow.Event, 0, batch)
	b.ResetTimer()
	for range b.N {
		evs = evs[:0]
		for len(evs) < batch {
			evs = append(evs, denseEvents(msg, t0)...)
			msg++
		}
		if err := st.Append(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppendPostgres(b *testing.B) {
	st, err := storeopen.Open(context.Background(), pgtest.DSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchAppend(b, st, 5000)
}

func BenchmarkAppendSQLite(b *testing.B) {
	st, err := storeopen.Open(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "a.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchAppend(b, st, 5000)
}
