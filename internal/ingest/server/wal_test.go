package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// gatedStore is a real store whose appends wait until the gate opens: a
// store outage.
type gatedStore struct {
	store.Store
	open chan struct{}
}

func (g *gatedStore) Append(ctx context.Context, evs []mailflow.Event) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Append(ctx, evs)
}

// While the store is down, POSTs are answered 204 once their lines are in
// the write-ahead log, until the log is at its cap: then 503 with
// Retry-After, and nothing of the refused request is kept; a syslog TCP
// connection is not read on. Once the store is back the log drains, the
// retried request and the TCP lines are taken, and every message is
// stored once.
func TestWALFullRefusesUntilTheStoreCatchesUp(t *testing.T) {
	dir := t.TempDir()
	st := &gatedStore{Store: openStore(t), open: make(chan struct{})}
	r := start(t, st, Options{Pipeline: PipelineOptions{
		Correlator: crashCorr, StateFile: filepath.Join(dir, "state.json"), WALDir: filepath.Join(dir, "wal"),
		WALMaxBytes: 16 << 10, WALSegmentBytes: 4 << 10, StateInterval: 100 * time.Millisecond,
	}})
	addr := r.s.Addr("http").String()
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	msg := func(i int) []string { m := crashMessage(t0, i); return append(m[0], m[1]...) }
	accepted := 0
	var refused *http.Response
	for i := 0; i < 1000 && refused == nil; i++ {
		resp, err := http.Post("http://"+addr+"/ingest", "text/plain", strings.NewReader(strings.Join(msg(i), "\n")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNoContent:
			accepted++
		case http.StatusServiceUnavailable:
			refused = resp
		default:
			t.Fatalf("POST %d: %d", i, resp.StatusCode)
		}
	}
	if refused == nil || accepted == 0 {
		t.Fatalf("%d POSTs accepted, none refused, with the store down and a 16 KiB log", accepted)
	}
	if refused.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if n := metricValue(r.s.Metrics.WALRefused.WithLabelValues("full")); n != 1 {
		t.Errorf("wal_refused_total{reason=full} %v, want 1", n)
	}
	if b := metricValue(r.s.Metrics.WALBytes); b <= 0 || b > 16<<10 {
		t.Errorf("wal_bytes %v, want within the 16 KiB cap", b)
	}
	from, to := t0.Add(-time.Hour), t0.Add(time.Hour)
	if _, total := countStatus(t, st, from, to, mailflow.StatusDelivered); total != 0 {
		t.Fatalf("%d rows stored through a closed gate", total)
	}
	// a syslog TCP connection meanwhile: its lines are not read while the
	// log is full, and none is lost
	const viaTCP = 20
	c, err := net.Dial("tcp", r.s.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < viaTCP; i++ {
		fmt.Fprintf(c, "%s\n", strings.Join(msg(1000+i), "\n"))
	}
	c.Close()
	time.Sleep(300 * time.Millisecond)
	if n := metricValue(r.s.Metrics.WALRefused.WithLabelValues("full")); n < 2 {
		t.Errorf("wal_refused_total{reason=full} %v after the TCP lines, want them refused too", n)
	}
	close(st.open)
	// the sender retries the refused request, as Fluent Bit does
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := postLines(addr, msg(accepted))
		if err == nil && code == http.StatusNoContent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retried POST is still refused 30 s after the store came back: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		d, total := countStatus(t, st, from, to, mailflow.StatusDelivered)
		if d == int64(accepted+1+viaTCP) && total == d {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages Delivered (%d rows)", d, accepted+1+viaTCP, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d POSTs accepted while the store was down, then 503 at the 16 KiB cap and a TCP connection not read; all %d messages stored once it was back", accepted, accepted+1+viaTCP)
}

func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

func TestWALDirNeedsStateFile(t *testing.T) {
	o := Options{HTTP: ":0", InsecureNoAuth: true, Pipeline: PipelineOptions{WALDir: t.TempDir()}}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--wal-dir needs --state-file") {
		t.Errorf("--wal-dir without --state-file: %v", err)
	}
	if got := DefaultWALDir("/var/lib/mailtrace/ingest-state.json"); got != "/var/lib/mailtrace/ingest-state.wal" {
		t.Errorf("DefaultWALDir: %q", got)
	}
}
