package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/ingest/server"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/testutil/harness"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// 200 MessageTraces applied at once all succeed with their rows; the
// manager never runs more than MaxConcurrentReconciles at a time and
// writes to the API server a bounded number of times per trace.
func TestTwoHundredTraces(t *testing.T) {
	env := kubetest.Get(t)
	st, _ := pgStore(t)
	const n, workers = 200, 4
	t0 := time.Now().UTC().Add(-6 * time.Hour).Truncate(time.Second)
	seedSenders(t, st, "load", n, t0)
	var c counter
	startManager(t, counted(env.Config, &c), st, cli.ManagerOptions{MaxConcurrentReconciles: workers})
	ns := kubetest.Namespace(t, env.Client)

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if v := int64(gauge("controller_runtime_active_workers")); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	reads0, writes0, trace0 := c.reads.Load(), c.writes.Load(), c.trace.Load()
	began := time.Now()
	createTraces(t, env.Client, ns, n, t0.Add(-time.Minute), t0.Add(time.Hour))
	traces := waitTraces(t, env.Client, ns, n, 5*time.Minute)
	took := time.Since(began)
	close(stop)
	<-sampled
	checkOneRowEach(t, traces)

	reads, writes, tw := c.reads.Load()-reads0, c.writes.Load()-writes0, c.trace.Load()-trace0
	t.Logf("%d traces in %s: %.0f traces/minute with %d workers; API requests per trace: %.2f writes (%.2f to messagetraces), %.2f reads; peak active workers %d",
		n, took.Round(time.Millisecond), float64(n)/took.Minutes(), workers, float64(writes)/n, float64(tw)/n, float64(reads)/n, peak.Load())
	if mc := gauge("controller_runtime_max_concurrent_reconciles"); mc != workers {
		t.Errorf("max concurrent reconciles %v, want %d", mc, workers)
	}
	if p := peak.Load(); p > workers { // sampled: a short peak may be missed, never invented
		t.Errorf("peak active workers %d, over the bound of %d", p, workers)
	}
	if per := float64(writes) / n; per >= 10 {
		t.Errorf("%.1f writes to the API server per trace, want < 10", per)
	}
	if per := float64(reads) / n; per >= 10 {
		t.Errorf("%.1f reads from the API server per trace (the cache should serve them), want < 10", per)
	}
}

// PostgreSQL restarted while lines stream over TCP: the ingester retries
// and, once everything is read and stored, the store holds exactly what
// the same lines give in a fresh store: nothing lost, nothing doubled.
func TestPostgresRestartDuringIngest(t *testing.T) {
	st, _ := pgStore(t)
	const n = 5000
	t0 := time.Now().UTC().Add(-4 * time.Hour).Truncate(time.Second)
	var lines []string
	for i := 0; i < n; i++ {
		lines = append(lines, message("pgr", fmt.Sprintf("A0%08X", i), t0.Add(time.Duration(i)*time.Second), sender(i%300), fmt.Sprintf("r%d@example.com", i%7))...)
	}
	srv := server.New(st, server.Options{SyslogTCP: "127.0.0.1:0", InsecureNoAuth: true, Registerer: prometheus.NewRegistry(),
		Pipeline: server.PipelineOptions{Correlator: corr, MaxBackoff: 500 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer cancel()
	if srv.Addr("tcp") == nil {
		t.Fatal(<-done)
	}
	conn, err := net.Dial("tcp", srv.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(conn)
		for i, l := range lines {
			if _, err := w.WriteString(l + "\n"); err != nil {
				sent <- err
				return
			}
			if i%400 == 399 { // a steady stream, not one burst
				if err := w.Flush(); err != nil {
					sent <- err
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		sent <- w.Flush()
	}()
	// restart once part of the stream is stored
	written := func() float64 { return metricValue(srv.Metrics.EventsWritten) }
	kubetest.Eventually(t, time.Minute, 5*time.Millisecond, func() (bool, string) { return written() > 0, "no event stored yet" })
	readBefore := metricValue(srv.Metrics.LinesRead.WithLabelValues("tcp"))
	pgtest.Restart(t)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	conn.Close()
	kubetest.Eventually(t, 2*time.Minute, 20*time.Millisecond, func() (bool, string) {
		got := metricValue(srv.Metrics.LinesRead.WithLabelValues("tcp"))
		return got == float64(len(lines)), fmt.Sprintf("%v of %d lines read", got, len(lines))
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ingester: %v", err)
	}
	storeErrors := metricValue(srv.Metrics.StoreErrors)
	t.Logf("restart after %v of %d lines read; %v failed appends retried", readBefore, len(lines), storeErrors)
	if readBefore >= float64(len(lines)) {
		t.Log("the whole stream was read before the restart: the restart hit the writer only")
	}

	ref, _ := pgStore(t)
	seed(t, ref, lines)
	from, to := t0.Add(-time.Minute), t0.Add(time.Duration(n+60)*time.Second)
	got, want := dump(t, st, from, to), dump(t, ref, from, to)
	if len(want) != n {
		t.Fatalf("reference store has %d rows, want %d", len(want), n)
	}
	lost, doubled := diff(want, got), diff(got, want)
	t.Logf("events lost: %d rows missing, %d extra", len(lost), len(doubled))
	if len(lost) > 0 || len(doubled) > 0 {
		t.Errorf("after the restart %d rows (want %d): missing %s; extra %s", len(got), len(want), head(lost), head(doubled))
	}
	// the events of a sample of messages, one by one
	for i := 0; i < len(got) && i < len(want); i += n / 50 {
		tid := strings.Fields(want[i])[1]
		a, _ := st.Events(context.Background(), tid, "")
		b, _ := ref.Events(context.Background(), tid, "")
		if len(a) != len(b) || len(a) == 0 {
			t.Errorf("message %s: %d events, %d in the reference", tid, len(a), len(b))
		}
	}
}

func diff(a, b []string) []string {
	in := map[string]int{}
	for _, s := range b {
		in[s]++
	}
	var out []string
	for _, s := range a {
		if in[s] > 0 {
			in[s]--
			continue
		}
		out = append(out, s)
	}
	return out
}

func head(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], "; ") + "; ..."
	}
	return strings.Join(s, "; ")
}

func metricValue(m prometheus.Metric) float64 {
	mfs := prometheus.NewRegistry()
	c := collector{m}
	if err := mfs.Register(c); err != nil {
		return -1
	}
	fams, err := mfs.Gather()
	if err != nil || len(fams) == 0 || len(fams[0].Metric) == 0 {
		return -1
	}
	d := fams[0].Metric[0]
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return -1
}

type collector struct{ m prometheus.Metric }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c collector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// PostgreSQL down while traces are created, back a little later: the
// traces fail to reach the store, retry, and all succeed with their rows.
func TestPostgresRestartDuringTraces(t *testing.T) {
	env := kubetest.Get(t)
	st, _ := pgStore(t)
	const n = 20
	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	seedSenders(t, st, "pgtrace", n, t0)
	startManager(t, env.Config, st, cli.ManagerOptions{})
	ns := kubetest.Namespace(t, env.Client)
	before := storeErrorsTotal()
	pgtest.Stop(t)
	stopped := true
	defer func() {
		if stopped {
			pgtest.Start(t)
		}
	}()
	createTraces(t, env.Client, ns, n, t0.Add(-time.Minute), t0.Add(time.Hour))
	kubetest.Eventually(t, time.Minute, 50*time.Millisecond, func() (bool, string) {
		return storeErrorsTotal() > before, "no trace has met the store down yet"
	})
	pgtest.Start(t)
	stopped = false
	traces := waitTraces(t, env.Client, ns, n, 3*time.Minute)
	checkOneRowEach(t, traces)
	t.Logf("%v store errors while PostgreSQL was down, then every trace succeeded", storeErrorsTotal()-before)
}

func storeErrorsTotal() float64 {
	fams, _ := crmetrics.Registry.Gather()
	for _, f := range fams {
		if f.GetName() == "mailtrace_store_errors_total" {
			var s float64
			for _, m := range f.GetMetric() {
				s += m.GetCounter().GetValue()
			}
			return s
		}
	}
	return 0
}

// slowStore makes every trace query take a while, so a kill finds
// reconciles in the middle of their work.
type slowStore struct {
	store.Store
	delay time.Duration
}

func (s slowStore) Trace(ctx context.Context, q mailflow.Query, cur mailflow.Cursor, limit int) (mailflow.Page, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return mailflow.Page{}, ctx.Err()
	}
	return s.Store.Trace(ctx, q, cur, limit)
}

// The manager killed (its context cancelled at once) while traces run,
// then a new manager on the same store and API server: every trace ends
// Succeeded with its one row, none lost, duplicated or stuck. The manager
// also ingests over HTTP with a token: the token and the wrong ones senders
// tried are in no log, Event or status.
func TestManagerKilledMidReconcile(t *testing.T) {
	env := kubetest.Get(t)
	st, _ := pgStore(t)
	const n = 60
	const token, wrong = "ingest-SECRET-token-4c1d", "wrong-SECRET-token-99"
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	seedSenders(t, st, "kill", n, t0)
	t.Setenv(cli.EnvIngestToken, token)
	ingestAddr := harness.FreeAddr(t)
	first := startManager(t, env.Config, slowStore{st, 300 * time.Millisecond}, cli.ManagerOptions{
		MaxConcurrentReconciles: 4,
		Ingest:                  server.Options{HTTP: ingestAddr, FlagPrefix: "ingest-", Pipeline: server.PipelineOptions{Correlator: corr}},
	})
	ns := kubetest.Namespace(t, env.Client)
	createTraces(t, env.Client, ns, n, t0.Add(-time.Minute), t0.Add(time.Hour))
	// senders with wrong or no tokens, and one with the right one
	for _, auth := range []string{"", "Bearer " + wrong, "Basic " + wrong, "Bearer " + token} {
		kubetest.Eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
			req, _ := http.NewRequest("POST", "http://"+ingestAddr+"/ingest", strings.NewReader(strings.Join(message("kill", "ABCDEF0001", t0, "late@example.net", "b@example.com"), "\n")))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return true, ""
		})
	}
	// kill once some traces are done and others are running
	kubetest.Eventually(t, 2*time.Minute, 10*time.Millisecond, func() (bool, string) {
		var list v1alpha1.MessageTraceList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		done := 0
		for i := range list.Items {
			if finished(&list.Items[i]) {
				done++
			}
		}
		return done >= 5, fmt.Sprintf("%d finished", done)
	})
	first.stop(t)
	var list v1alpha1.MessageTraceList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	doneAtKill := 0
	for i := range list.Items {
		if finished(&list.Items[i]) {
			doneAtKill++
		}
	}
	t.Logf("killed with %d of %d traces finished", doneAtKill, n)
	if doneAtKill == n {
		t.Log("every trace had finished before the kill took effect")
	}
	startManager(t, env.Config, st, cli.ManagerOptions{MaxConcurrentReconciles: 4})
	traces := waitTraces(t, env.Client, ns, n, 3*time.Minute)
	checkOneRowEach(t, traces)

	// no credential in the logs, Events or status
	var events corev1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(events.Items)
	status, _ := json.Marshal(traces)
	out := logs.String()
	if !strings.Contains(out, "ingest connection refused") {
		t.Errorf("the refused ingest requests were not logged: the test missed its point")
	}
	for what, text := range map[string]string{"logs": out, "events": string(ev), "status": string(status)} {
		if strings.Contains(text, "SECRET") {
			t.Errorf("a credential in the %s", what)
		}
	}
}

// A store with messages older than the retention: the manager's retention
// loop prunes them at start; a trace over the pruned range finds nothing,
// one over recent data finds all of it.
func TestRetentionPrunes(t *testing.T) {
	env := kubetest.Get(t)
	st, _ := pgStore(t)
	now := time.Now().UTC().Truncate(time.Second)
	old1, old2, recent := now.Add(-30*24*time.Hour), now.Add(-20*24*time.Hour), now.Add(-24*time.Hour)
	var lines []string
	for i := 0; i < 50; i++ {
		at := time.Duration(i) * time.Second
		lines = append(lines, message("ret", fmt.Sprintf("1A%06X", i), old1.Add(at), "old@example.net", "b@example.com")...)
		lines = append(lines, message("ret", fmt.Sprintf("1B%06X", i), old2.Add(at), "old@example.net", "b@example.com")...)
		lines = append(lines, message("ret", fmt.Sprintf("1C%06X", i), recent.Add(at), "new@example.net", "b@example.com")...)
	}
	seed(t, st, lines)
	count := func(from, to time.Time) int64 {
		c, err := st.Count(context.Background(), mailflow.Query{Start: from, End: to})
		if err != nil {
			t.Fatal(err)
		}
		return c.Total
	}
	if c := count(old1.Add(-time.Hour), old2.Add(time.Hour)); c != 100 {
		t.Fatalf("seeded %d old rows, want 100", c)
	}
	startManager(t, env.Config, st, cli.ManagerOptions{Retention: 10 * 24 * time.Hour,
		Reports: cli.ReportOptions{Threshold: 40 * 24 * time.Hour}}) // the pruned range is answered in status
	kubetest.Eventually(t, time.Minute, 100*time.Millisecond, func() (bool, string) {
		c := count(old1.Add(-time.Hour), old2.Add(time.Hour))
		return c == 0, fmt.Sprintf("%d old rows left", c)
	})
	ns := kubetest.Namespace(t, env.Client)
	for name, r := range map[string][2]time.Time{"pruned": {old1.Add(-time.Hour), old2.Add(time.Hour)}, "recent": {recent.Add(-time.Hour), now}} {
		mt := &v1alpha1.MessageTrace{}
		mt.Name, mt.Namespace = name, ns
		mt.Spec.StartTime, mt.Spec.EndTime = abs(r[0]), abs(r[1])
		if err := env.Client.Create(context.Background(), mt); err != nil {
			t.Fatal(err)
		}
	}
	var list v1alpha1.MessageTraceList
	kubetest.Eventually(t, time.Minute, 100*time.Millisecond, func() (bool, string) {
		_ = env.Client.List(context.Background(), &list, client.InNamespace(ns))
		if len(list.Items) != 2 {
			return false, fmt.Sprintf("%d traces", len(list.Items))
		}
		return finished(&list.Items[0]) && finished(&list.Items[1]), fmt.Sprintf("%+v; %+v", list.Items[0].Status, list.Items[1].Status)
	})
	for _, mt := range list.Items {
		want := map[string]int64{"pruned": 0, "recent": 50}[mt.Name]
		if mt.Status.Phase != v1alpha1.PhaseSucceeded || mt.Status.TotalMatches != want {
			t.Errorf("%s: phase %s, %d matches, want %d; conditions %+v", mt.Name, mt.Status.Phase, mt.Status.TotalMatches, want, mt.Status.Conditions)
		}
		for _, r := range mt.Status.Rows {
			if r.Sender != "new@example.net" {
				t.Errorf("%s: row of %s", mt.Name, r.Sender)
			}
		}
	}
	if c := count(recent.Add(-time.Hour), now); c != 50 {
		t.Errorf("%d recent rows after pruning, want 50", c)
	}
}
