package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// BenchEnd is when the benchmark data ends: received times are spread
// uniformly over the 90 days before it.
var BenchEnd = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// BenchSeedVersion changes whenever SeedBench would produce different data;
// adapters key cached benchmark databases by it.
const BenchSeedVersion = 1

// BenchBatch is how many events SeedBench appends per call.
const BenchBatch = 5000

var benchSubjects = []string{
	"Quarterly report", "Re: Quarterly report", "Invoice %d", "Your order #%d has shipped", "Meeting notes",
	"Fwd: contract draft", "会議の件について", "Rechnung für März", "Password reset", "Weekly newsletter %d",
	"Delivery Status Notification (Failure)", "Lunch?", "Re: Re: budget 2026", "🎉 Team party", "Security alert",
}

// SeedBench appends deterministic benchmark data to an empty store: exactly
// rows (message, recipient) rows, messages received uniformly over the 90
// days before BenchEnd, 50 sender domains (d00.example ... d49.example), one
// to five recipients per message, a realistic mix of statuses, subjects and
// IPs. Events go through st.Append in batches of BenchBatch.
func SeedBench(ctx context.Context, st store.Store, rows int) error {
	rng := rand.New(rand.NewPCG(BenchSeedVersion, 42))
	span := int64(90 * 24 * time.Hour / time.Millisecond)
	batch := make([]mailflow.Event, 0, BenchBatch+32)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := st.Append(ctx, batch); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		batch = batch[:0]
		return nil
	}
	ip4 := func(a int) string {
		return fmt.Sprintf("%d.%d.%d.%d", a, rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
	}
	dirs := []mailflow.Direction{mailflow.DirectionInbound, mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal}
	made := 0
	for m := 0; made < rows; m++ {
		k := min(1+rng.IntN(5), rows-made)
		recv := BenchEnd.Add(-time.Duration(1+rng.Int64N(span)) * time.Millisecond)
		mtid := fmt.Sprintf("b%08d", m)
		subj := benchSubjects[rng.IntN(len(benchSubjects))]
		if n := rng.IntN(10000); strings.Contains(subj, "%d") {
			subj = fmt.Sprintf(subj, n)
		}
		from := ip4(198)
		batch = append(batch, mailflow.Event{
			ID: mtid + "-r", Time: recv, MessageTraceID: mtid, Type: mailflow.EventReceive, Source: "smtpd",
			Sender:    fmt.Sprintf("u%03d@d%02d.example", rng.IntN(500), rng.IntN(50)),
			Subject:   subj,
			MessageID: fmt.Sprintf("<%s.%d@mail.d%02d.example>", mtid, rng.IntN(1<<30), rng.IntN(50)),
			Size:      int64(500 + rng.IntN(200000)), Direction: dirs[rng.IntN(len(dirs))],
			OriginalClientIP: from, FromIP: from, ServerHostname: "mx1.corp.example",
		})
		for j := range k {
			rcpt := fmt.Sprintf("user%04d@corp%d.example", rng.IntN(5000), (j+rng.IntN(3))%3)
			e := mailflow.Event{ID: fmt.Sprintf("%s-%d", mtid, j), MessageTraceID: mtid, Recipient: rcpt, Source: "smtp",
				Time: recv.Add(time.Duration(1+rng.IntN(120)) * time.Second)}
			switch p := rng.IntN(100); {
			case p < 80:
				e.Type, e.ToIP, e.DSN, e.SMTPResponse = mailflow.EventDeliver, ip4(10), "2.0.0", "250 2.0.0 Ok"
			case p < 86:
				e.Type, e.DSN = mailflow.EventDefer, "4.4.1"
			case p < 89:
				e.Type, e.DSN = mailflow.EventFail, "5.1.1"
			case p < 92:
				e.Type = mailflow.EventQuarantine
			case p < 97:
				e.Type = mailflow.EventFilterAsSpam
			case p < 99:
				e.Type = mailflow.EventSend
			default:
				e.Type = mailflow.EventExpand
			}
			batch = append(batch, e)
		}
		made += k
		if len(batch) >= BenchBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// BenchQuery is the benchmark's trace: the 10 days before BenchEnd, senders
// of one domain out of fifty.
func BenchQuery() mailflow.Query {
	return mailflow.Query{Start: BenchEnd.Add(-10 * 24 * time.Hour), End: BenchEnd, Senders: []string{"*@d07.example"}}
}

// BenchTrace measures the first page (500 rows) of BenchQuery on a seeded store.
func BenchTrace(b *testing.B, st store.Store) {
	ctx := context.Background()
	q := BenchQuery()
	var rows int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := st.Trace(ctx, q, "", 500)
		if err != nil {
			b.Fatal(err)
		}
		rows = len(p.Rows)
	}
	b.StopTimer()
	if rows == 0 {
		b.Fatal("the benchmark trace returned no rows: is the store seeded?")
	}
	b.ReportMetric(float64(rows), "rows")
}

// BenchCount measures Count over BenchQuery on a seeded store.
func BenchCount(b *testing.B, st store.Store) {
	ctx := context.Background()
	q := BenchQuery()
	var total int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := st.Count(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		total = c.Total
	}
	b.StopTimer()
	b.ReportMetric(float64(total), "rows")
}
