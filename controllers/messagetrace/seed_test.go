package messagetrace

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// The seeded mail flow: a dozen messages over five days, several senders and
// recipients, every delivery status, a group expansion and a message whose
// recipients are not known yet. Times are offsets from day0.

type seedRcpt struct {
	addr         string
	status       mailflow.Status
	expandedFrom string
	toIP         string
	deferFirst   bool // deferred before its outcome
}

type seedMsg struct {
	id      string
	at      time.Duration
	sender  string
	subject string
	dir     mailflow.Direction
	fromIP  string
	size    int64
	rcpts   []seedRcpt
}

const day = 24 * time.Hour

var seed = []seedMsg{
	{"m01", 1 * time.Hour, "alice@example.com", "Invoice 1001", mailflow.DirectionOutbound, "10.0.0.5", 1200,
		[]seedRcpt{{addr: "bob@example.org", status: mailflow.StatusDelivered, toIP: "192.0.2.10"}}},
	{"m02", 3 * time.Hour, "alice@example.com", "Invoice 1002", mailflow.DirectionOutbound, "10.0.0.5", 1300,
		[]seedRcpt{{addr: "carol@example.net", status: mailflow.StatusFailed}}},
	{"m03", day, "dave@partner.test", "Meeting notes", mailflow.DirectionInbound, "198.51.100.7", 5000,
		[]seedRcpt{{addr: "alice@example.com", status: mailflow.StatusDelivered, toIP: "10.0.0.25"}}},
	{"m04", day + 2*time.Hour, "spam@bad.test", "You won", mailflow.DirectionInbound, "203.0.113.9", 800,
		[]seedRcpt{{addr: "alice@example.com", status: mailflow.StatusFilteredAsSpam}}},
	{"m05", 2 * day, "alice@example.com", "Team lunch", mailflow.DirectionInternal, "10.0.0.5", 900,
		[]seedRcpt{
			{addr: "team@example.com", status: mailflow.StatusExpanded},
			{addr: "bob@example.com", status: mailflow.StatusDelivered, expandedFrom: "team@example.com", toIP: "10.0.0.25"},
			{addr: "erin@example.com", status: mailflow.StatusDelivered, expandedFrom: "team@example.com", toIP: "10.0.0.25"},
		}},
	{"m06", 2*day + 5*time.Hour, "frank@example.com", "Quarterly report", mailflow.DirectionOutbound, "10.0.0.6", 250000,
		[]seedRcpt{{addr: "grace@example.org", status: mailflow.StatusPending}}},
	{"m07", 3 * day, "mallory@bad.test", "Invoice overdue", mailflow.DirectionInbound, "203.0.113.66", 4000,
		[]seedRcpt{{addr: "frank@example.com", status: mailflow.StatusQuarantined}}},
	{"m08", 3*day + time.Hour, "alice@example.com", "Invoice 1003", mailflow.DirectionOutbound, "10.0.0.5", 1250,
		[]seedRcpt{{addr: "henry@example.org", status: mailflow.StatusDelivered, toIP: "192.0.2.11"}}},
	{"m09", 4 * day, "bob@example.com", "Draft", mailflow.DirectionOutbound, "10.0.0.7", 300, nil},
	{"m10", 4*day + time.Hour, "ivan@partner.test", "Re: Invoice 1001", mailflow.DirectionInbound, "198.51.100.8", 2200,
		[]seedRcpt{{addr: "bob@example.com", status: mailflow.StatusDelivered, toIP: "10.0.0.25"}}},
	{"m11", 4*day + 2*time.Hour, "alice@example.com", "Invoice 1004", mailflow.DirectionOutbound, "10.0.0.5", 1400,
		[]seedRcpt{
			{addr: "judy@example.org", status: mailflow.StatusDelivered, toIP: "192.0.2.12"},
			{addr: "kim@example.org", status: mailflow.StatusFailed},
		}},
	{"m12", 4*day + 3*time.Hour, "carol@example.net", "Payment", mailflow.DirectionInbound, "198.51.100.9", 3100,
		[]seedRcpt{{addr: "alice@example.com", status: mailflow.StatusDelivered, toIP: "10.0.0.25", deferFirst: true}}},
}

// day0 puts the seeded flow in the five days before now (whole hours), so
// that relative windows anchored at a trace's creation see its last days.
func day0() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(-5 * day) }

var outcomeEvent = map[mailflow.Status]mailflow.EventType{
	mailflow.StatusDelivered:      mailflow.EventDeliver,
	mailflow.StatusPending:        mailflow.EventDefer,
	mailflow.StatusExpanded:       mailflow.EventExpand,
	mailflow.StatusFailed:         mailflow.EventFail,
	mailflow.StatusQuarantined:    mailflow.EventQuarantine,
	mailflow.StatusFilteredAsSpam: mailflow.EventFilterAsSpam,
}

func seedEvents(d0 time.Time, msgs []seedMsg) []mailflow.Event {
	var out []mailflow.Event
	for _, m := range msgs {
		rcv := d0.Add(m.at)
		out = append(out, mailflow.Event{
			ID: m.id + "-receive", Time: rcv, MessageTraceID: m.id, Type: mailflow.EventReceive, Source: "smtpd",
			MessageID: m.id + "@mail.test", Sender: m.sender, Subject: m.subject, Size: m.size, Direction: m.dir,
			OriginalClientIP: m.fromIP, FromIP: m.fromIP, Received: rcv,
		})
		for _, r := range m.rcpts {
			if r.deferFirst {
				out = append(out, mailflow.Event{ID: m.id + "-" + r.addr + "-defer", Time: rcv.Add(time.Minute),
					MessageTraceID: m.id, Recipient: r.addr, Type: mailflow.EventDefer, Detail: "451 try again later"})
			}
			out = append(out, mailflow.Event{ID: m.id + "-" + r.addr, Time: rcv.Add(30 * time.Minute),
				MessageTraceID: m.id, Recipient: r.addr, Type: outcomeEvent[r.status], ToIP: r.toIP,
				ExpandedFrom: r.expandedFrom, Detail: "outcome"})
		}
	}
	return out
}

// seedRows is what the store must hold for msgs: one row per (message,
// recipient), or a GettingStatus placeholder while no recipient is known.
func seedRows(d0 time.Time, msgs []seedMsg) []mailflow.Row {
	var out []mailflow.Row
	for _, m := range msgs {
		base := mailflow.Row{
			Received: d0.Add(m.at), Sender: m.sender, Subject: m.subject, MessageID: m.id + "@mail.test",
			MessageTraceID: m.id, Size: m.size, OriginalClientIP: m.fromIP, FromIP: m.fromIP, Direction: m.dir,
		}
		if len(m.rcpts) == 0 {
			r := base
			r.Status = mailflow.StatusGettingStatus
			out = append(out, r)
		}
		for _, rc := range m.rcpts {
			r := base
			r.Recipient, r.Status, r.ToIP, r.ExpandedFrom = rc.addr, rc.status, rc.toIP, rc.expandedFrom
			out = append(out, r)
		}
	}
	return out
}

func seedStore(t *testing.T, st store.Store, d0 time.Time) {
	t.Helper()
	if err := st.Append(context.Background(), seedEvents(d0, seed)); err != nil {
		t.Fatalf("seeding the store: %v", err)
	}
}

// expected computes a trace's answer from the seed with the reference
// semantics (mailflow.Query.Match): rows newest first, and counts.
func expected(t *testing.T, d0 time.Time, mt *v1alpha1.MessageTrace) ([]v1alpha1.TraceRow, v1alpha1.StatusCounts) {
	t.Helper()
	start, end := mt.Spec.ResolveTimeRange(mt.CreationTimestamp.Time)
	q, err := BuildQuery(&mt.Spec, start, end)
	if err != nil {
		t.Fatal(err)
	}
	var rows []mailflow.Row
	for _, r := range seedRows(d0, seed) {
		if q.Match(r) {
			rows = append(rows, r)
		}
	}
	sortNewestFirst(rows)
	var out []v1alpha1.TraceRow
	var counts v1alpha1.StatusCounts
	for _, r := range rows {
		out = append(out, ToRow(r))
		counts.Add(v1alpha1.DeliveryStatus(r.Status), 1)
	}
	return out, counts
}

func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	m, ok := c.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not a single metric", c)
	}
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return 0
}
