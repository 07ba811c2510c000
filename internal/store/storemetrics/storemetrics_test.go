package storemetrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/storemetrics"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The metrics come from a real PostgreSQL store's rollups: rows per status
// and direction in the store and in the last complete hour, every series
// present (zeros too), and no label holding an address or a domain.
func TestMetricsFromRollups(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC)
	msg := func(id string, at time.Time, dir mailflow.Direction, outcome mailflow.EventType) []mailflow.Event {
		return []mailflow.Event{
			{ID: id + "-r", Time: at, MessageTraceID: id, Type: mailflow.EventReceive, Sender: "alice@secret.example", Direction: dir},
			{ID: id + "-o", Time: at.Add(time.Second), MessageTraceID: id, Recipient: "bob@hidden.example", Type: outcome},
		}
	}
	var evs []mailflow.Event
	evs = append(evs, msg("a", now.Add(-50*time.Minute), mailflow.DirectionInbound, mailflow.EventDeliver)...) // last hour (09:xx)
	evs = append(evs, msg("b", now.Add(-40*time.Minute), mailflow.DirectionInbound, mailflow.EventDeliver)...) // last hour
	evs = append(evs, msg("c", now.Add(-5*time.Minute), mailflow.DirectionOutbound, mailflow.EventFail)...)    // this hour
	evs = append(evs, msg("d", now.Add(-30*time.Hour), mailflow.DirectionOutbound, mailflow.EventDefer)...)    // a day before
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(storemetrics.New(st, func() time.Time { return now }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); v == "alice@secret.example" || v == "secret.example" || v == "hidden.example" {
					t.Errorf("%s carries %q as a label", mf.GetName(), v)
				}
				key += " " + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"mailtrace_store_rollups_up":                           1,
		"mailtrace_store_rows Inbound Delivered":               2,
		"mailtrace_store_rows Outbound Failed":                 1,
		"mailtrace_store_rows Outbound Pending":                1,
		"mailtrace_store_rows Internal Quarantined":            0,
		"mailtrace_store_rows_last_hour Inbound Delivered":     2,
		"mailtrace_store_rows_last_hour Outbound Failed":       0,
		"mailtrace_store_rows_last_hour Outbound Pending":      0,
		"mailtrace_store_rows_last_hour Unknown GettingStatus": 0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present: %v), want %v", k, v, ok, want)
		}
	}
	if n := len(got); n != 1+2*len(mailflow.AllStatuses)*4 {
		t.Errorf("%d series, want every status and direction of both metrics and the up gauge", n)
	}
}
