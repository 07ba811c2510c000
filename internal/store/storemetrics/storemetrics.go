// Package storemetrics exposes the trace store's rollups as Prometheus
// metrics: rows per status and direction, in the whole store and received
// in the last complete hour. They are read from the rollups at each scrape
// (a few thousand rollup rows, never the rows themselves), and never carry
// an address, a domain or anything else a tenant sent as a label.
package storemetrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

var (
	rowsDesc = prometheus.NewDesc("mailtrace_store_rows",
		"(message, recipient) rows in the trace store per current status and direction, from its rollups.",
		[]string{"status", "direction"}, nil)
	lastHourDesc = prometheus.NewDesc("mailtrace_store_rows_last_hour",
		"Rows received in the last complete UTC hour per current status and direction, from the store's rollups.",
		[]string{"status", "direction"}, nil)
	upDesc = prometheus.NewDesc("mailtrace_store_rollups_up",
		"1 when the last scrape read the store's rollups, 0 when it failed (the other store metrics are then absent).",
		nil, nil)
)

// Collector reads a store's rollups at each scrape.
type Collector struct {
	st      store.StatusTotaler
	now     func() time.Time
	timeout time.Duration
}

// New returns the collector of st; now is the clock (time.Now when nil).
func New(st store.StatusTotaler, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{st: st, now: now, timeout: 5 * time.Second}
}

// Describe sends the metrics' descriptions.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rowsDesc
	ch <- lastHourDesc
	ch <- upDesc
}

// Collect reads the rollups.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	now := c.now().UTC()
	thisHour := now.Truncate(time.Hour)
	all, err := c.st.StatusTotals(ctx, time.Unix(0, 0), thisHour.Add(time.Hour))
	var last []store.StatusTotal
	if err == nil {
		last, err = c.st.StatusTotals(ctx, thisHour.Add(-time.Hour), thisHour)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	emit := func(d *prometheus.Desc, ts []store.StatusTotal) {
		// every status and direction, zeros included, so series do not
		// vanish and reappear
		n := map[[2]string]int64{}
		for _, t := range ts {
			n[[2]string{string(t.Status), direction(t.Direction)}] += t.Rows
		}
		for _, s := range mailflow.AllStatuses {
			for _, dir := range []string{"Inbound", "Outbound", "Internal", "Unknown"} {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n[[2]string{string(s), dir}]), string(s), dir)
			}
		}
	}
	emit(rowsDesc, all)
	emit(lastHourDesc, last)
}

// direction is a direction's label value: Unknown when the store has none.
func direction(d mailflow.Direction) string {
	switch d {
	case mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal:
		return string(d)
	}
	return "Unknown"
}
