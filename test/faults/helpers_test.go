// Package faults holds the load and fault tests of the whole operator: the
// manager of internal/cli.NewManager on an envtest control plane
// (internal/testutil/kubetest) with a real PostgreSQL store
// (internal/testutil/pgtest), everything on loopback. Each test stops by
// itself; none asserts a wall-clock time (figures are logged, see
// docs/benchmarks.md). `make test-faults` runs them; `make test` too.
package faults

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/server"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// logs receives everything the managers log (a test greps it for credentials).
var logs syncBuffer

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(&logs), zap.UseDevMode(false)))
	code := kubetest.Run(m, nil)
	pgtest.Shutdown()
	os.Exit(code)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var corr = ingest.Config{AcceptedDomains: []string{"example.com"}}

// pgStore opens a fresh PostgreSQL database as a store.
func pgStore(t *testing.T) (store.Store, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	st, err := storeopen.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dsn
}

// message is the four Postfix lines of one delivered message; qid must be
// a Postfix queue id (hex for short ids).
func message(host, qid string, at time.Time, sender, rcpt string) []string {
	ts := at.UTC().Format(time.RFC3339)
	return []string{
		ts + " " + host + " postfix/smtpd[101]: " + qid + ": client=mx.example.net[192.0.2.1]",
		ts + " " + host + " postfix/qmgr[102]: " + qid + ": from=<" + sender + ">, size=1234, nrcpt=1 (queue active)",
		ts + " " + host + " postfix/smtp[103]: " + qid + ": to=<" + rcpt + ">, relay=r[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 ok)",
		ts + " " + host + " postfix/qmgr[102]: " + qid + ": removed",
	}
}

// seed ingests lines into st as a backfill would.
func seed(t *testing.T, st store.Store, lines []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.IngestFiles(context.Background(), st, []string{f}, server.FileOptions{Pipeline: server.PipelineOptions{Correlator: corr}}); err != nil {
		t.Fatal(err)
	}
}

// sender i's address; trace i asks for it.
func sender(i int) string { return fmt.Sprintf("s%04d@example.net", i) }

// seedSenders stores one message from each of n senders at t0 + i seconds.
func seedSenders(t *testing.T, st store.Store, host string, n int, t0 time.Time) {
	var lines []string
	for i := 0; i < n; i++ {
		lines = append(lines, message(host, fmt.Sprintf("%03X%07X", crc32.ChecksumIEEE([]byte(host))&0xfff, i), t0.Add(time.Duration(i)*time.Second), sender(i), "b@example.com")...)
	}
	seed(t, st, lines)
}

// counter counts the manager's requests to the API server.
type counter struct {
	rt                   http.RoundTripper
	reads, writes, trace atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		c.reads.Add(1)
	} else {
		c.writes.Add(1)
		if strings.Contains(r.URL.Path, "/messagetraces") {
			c.trace.Add(1)
		}
	}
	return c.rt.RoundTrip(r)
}

// counted returns a copy of cfg whose requests c counts.
func counted(cfg *rest.Config, c *counter) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { c.rt = rt; return c })
	return cfg
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

// startManager runs cli.NewManager until stop (or the test's end).
func startManager(t *testing.T, cfg *rest.Config, st store.Store, o cli.ManagerOptions) *running {
	t.Helper()
	o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
	if o.Tenancy == "" {
		o.Tenancy = cli.TenancyDisabled // one team: these tests are about load and faults, not tenancy
	}
	mgr, err := cli.NewManager(cfg, st, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- mgr.Start(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the manager's context at once (whatever it is doing) and
// waits until it has returned.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("manager: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the manager did not stop")
	}
}

func abs(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }

// createTraces creates n traces in ns, trace i for sender i over [from, to),
// from a few goroutines at once.
func createTraces(t *testing.T, c client.Client, ns string, n int, from, to time.Time) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("t%04d", i), Namespace: ns},
					Spec: v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{v1alpha1.AddressPattern(sender(i))},
						StartTime: abs(from), EndTime: abs(to)}}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := c.Create(ctx, mt)
				cancel()
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating traces: %v", err)
	}
}

func finished(mt *v1alpha1.MessageTrace) bool {
	return mt.Status.Phase == v1alpha1.PhaseSucceeded || mt.Status.Phase == v1alpha1.PhaseFailed
}

// waitTraces waits until every trace of ns has finished (bounded) and returns them.
func waitTraces(t *testing.T, c client.Client, ns string, n int, timeout time.Duration) []v1alpha1.MessageTrace {
	t.Helper()
	var list v1alpha1.MessageTraceList
	kubetest.Eventually(t, timeout, 200*time.Millisecond, func() (bool, string) {
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		byPhase := map[v1alpha1.Phase]int{}
		done := 0
		for i := range list.Items {
			byPhase[list.Items[i].Status.Phase]++
			if finished(&list.Items[i]) {
				done++
			}
		}
		return len(list.Items) == n && done == n, fmt.Sprintf("%d traces, by phase %v", len(list.Items), byPhase)
	})
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

// checkOneRowEach: trace i succeeded with exactly the one row of sender i.
func checkOneRowEach(t *testing.T, traces []v1alpha1.MessageTrace) {
	t.Helper()
	for i, mt := range traces {
		if mt.Name != fmt.Sprintf("t%04d", i) {
			t.Fatalf("trace %d is %s: traces lost or duplicated", i, mt.Name)
		}
		if mt.Status.Phase != v1alpha1.PhaseSucceeded || mt.Status.TotalMatches != 1 || len(mt.Status.Rows) != 1 ||
			mt.Status.Rows[0].Sender != sender(i) {
			t.Errorf("%s: phase %s, %d matches, rows %+v, conditions %+v", mt.Name, mt.Status.Phase, mt.Status.TotalMatches, mt.Status.Rows, mt.Status.Conditions)
		}
	}
}

// gauge samples a controller-runtime metric of the messagetrace controller.
func gauge(name string) float64 {
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "controller") == "messagetrace" {
				if m.Gauge != nil {
					return m.Gauge.GetValue()
				}
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// dump is every row of st in [from, to), one line each, sorted.
func dump(t *testing.T, st store.Store, from, to time.Time) []string {
	t.Helper()
	var out []string
	var cur mailflow.Cursor
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p, err := st.Trace(ctx, mailflow.Query{Start: from, End: to}, cur, 1000)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rows {
			out = append(out, fmt.Sprintf("%s %s %s %s %s %s", r.Received.UTC().Format(time.RFC3339), r.MessageTraceID, r.Sender, r.Recipient, r.Status, r.Direction))
		}
		if p.Next == "" {
			break
		}
		cur = p.Next
	}
	sort.Strings(out)
	return out
}
