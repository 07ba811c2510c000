package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// BenchRows calls fn with the (message, recipient) rows SeedBench's events
// become, in the same order and with the same values (the same random
// sequence), without any store: what an adapter loads in bulk (PostgreSQL's
// COPY) when a benchmark needs far more rows than appending can seed in a
// reasonable time. fn must not keep r.
func BenchRows(rows int, fn func(r *mailflow.Row) error) error {
	rng := rand.New(rand.NewPCG(BenchSeedVersion, 42))
	span := int64(90 * 24 * time.Hour / time.Millisecond)
	ip4 := func(a int) string {
		return fmt.Sprintf("%d.%d.%d.%d", a, rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
	}
	dirs := []mailflow.Direction{mailflow.DirectionInbound, mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal}
	var r mailflow.Row
	var seen []string
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
		sender := fmt.Sprintf("u%03d@d%02d.example", rng.IntN(500), rng.IntN(50))
		msgID := fmt.Sprintf("<%s.%d@mail.d%02d.example>", mtid, rng.IntN(1<<30), rng.IntN(50))
		size := int64(500 + rng.IntN(200000))
		dir := dirs[rng.IntN(len(dirs))]
		seen = seen[:0]
		for j := range k {
			rcpt := fmt.Sprintf("user%04d@corp%d.example", rng.IntN(5000), (j+rng.IntN(3))%3)
			at := recv.Add(time.Duration(1+rng.IntN(120)) * time.Second)
			r = mailflow.Row{Received: recv, Sender: sender, Recipient: rcpt, Subject: subj, MessageID: msgID,
				MessageTraceID: mtid, Size: size, OriginalClientIP: from, FromIP: from, Direction: dir,
				Status: mailflow.StatusGettingStatus}
			switch p := rng.IntN(100); {
			case p < 80:
				r.Status, r.ToIP = mailflow.StatusDelivered, ip4(10)
			case p < 86:
				r.Status = mailflow.StatusPending
			case p < 89:
				r.Status = mailflow.StatusFailed
			case p < 92:
				r.Status = mailflow.StatusQuarantined
			case p < 97:
				r.Status = mailflow.StatusFilteredAsSpam
			case p < 99:
				// Send: handed on, no outcome yet
			default:
				r.Status = mailflow.StatusExpanded
			}
			if r.Status != mailflow.StatusGettingStatus {
				r.StatusTime = at
			}
			if slices.Contains(seen, rcpt) {
				continue // one row per (message, recipient), as Append merges them
			}
			seen = append(seen, rcpt)
			if err := fn(&r); err != nil {
				return err
			}
		}
		made += k
	}
	return nil
}

// Scale benchmarks: the query shapes issue 19 measures on a seeded store.

// BenchCase is one measured query: a trace's first 500 rows, or a count.
type BenchCase struct {
	Name  string
	Query mailflow.Query
	Count bool
}

// ScaleSeedName is the PostgreSQL database in which BenchmarkScale keeps
// its seed of rows rows (BenchRows, loaded with COPY) for a schema of
// migrations migrations: a later run, or another benchmark that needs a
// large store (test/ingestbench), finds it by this name.
func ScaleSeedName(rows, migrations int) string {
	return fmt.Sprintf("mailtrace_scale_%d_v%d_m%d", rows, BenchSeedVersion, migrations)
}

// SQLiteBenchFile is the name of the SQLite adapter's benchmark database
// of rows rows (SeedBench) for a schema of migrations migrations, kept in
// the repository's git-ignored bin/bench/ with a ".complete" marker beside
// it once seeded.
func SQLiteBenchFile(migrations, rows int) string {
	return fmt.Sprintf("sqlite-schema%d-seed%d-%d.db", migrations, BenchSeedVersion, rows)
}

// ScaleCases are the query shapes measured at every scale: the 10-day
// `*@domain` trace, the mid-string wildcard, and 90-day counts per status.
func ScaleCases() []BenchCase {
	d10 := mailflow.Query{Start: BenchEnd.Add(-10 * 24 * time.Hour), End: BenchEnd}
	d90 := mailflow.Query{Start: BenchEnd.Add(-90 * 24 * time.Hour), End: BenchEnd}
	with := func(q mailflow.Query, f func(*mailflow.Query)) mailflow.Query { f(&q); return q }
	domain := with(d10, func(q *mailflow.Query) { q.Senders = []string{"*@d07.example"} })
	mid := with(d10, func(q *mailflow.Query) { q.Senders = []string{"*7@d0*.example"} })
	return []BenchCase{
		{Name: "trace-10d-domain", Query: domain},
		{Name: "trace-10d-midwild", Query: mid},
		{Name: "count-10d-midwild", Query: mid, Count: true},
		{Name: "count-90d-all", Query: d90, Count: true},
		{Name: "count-90d-failed", Query: with(d90, func(q *mailflow.Query) { q.Statuses = []mailflow.Status{mailflow.StatusFailed} }), Count: true},
		{Name: "count-90d-quarantined-outbound", Query: with(d90, func(q *mailflow.Query) {
			q.Statuses = []mailflow.Status{mailflow.StatusQuarantined}
			q.Direction = mailflow.DirectionOutbound
		}), Count: true},
		{Name: "count-90d-domain", Query: with(d90, func(q *mailflow.Query) { q.Senders = []string{"*@d07.example"} }), Count: true},
		{Name: "count-90d-unaligned", Query: mailflow.Query{Start: d90.Start.Add(17 * time.Minute), End: BenchEnd.Add(-23 * time.Minute)}, Count: true},
		{Name: "trace-90d-all", Query: d90},
	}
}

// BenchCaseRun measures one BenchCase on a seeded store.
func BenchCaseRun(b *testing.B, st store.Store, c BenchCase) {
	ctx := context.Background()
	var n int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if c.Count {
			cnt, err := st.Count(ctx, c.Query)
			if err != nil {
				b.Fatal(err)
			}
			n = cnt.Total
			continue
		}
		p, err := st.Trace(ctx, c.Query, "", 500)
		if err != nil {
			b.Fatal(err)
		}
		n = int64(len(p.Rows))
	}
	b.StopTimer()
	if n == 0 {
		b.Fatalf("%s matched no rows: is the store seeded?", c.Name)
	}
	b.ReportMetric(float64(n), "rows")
}
