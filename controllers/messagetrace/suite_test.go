package messagetrace

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	code := kubetest.Run(m, nil)
	pgtest.Shutdown()
	miniotest.Shutdown()
	os.Exit(code)
}

const waitFor = 60 * time.Second

// countingStore counts the queries that reach the store.
type countingStore struct {
	store.Store
	queries atomic.Int64
}

func (s *countingStore) Count(ctx context.Context, q mailflow.Query) (mailflow.Counts, error) {
	s.queries.Add(1)
	return s.Store.Count(ctx, q)
}

func (s *countingStore) Trace(ctx context.Context, q mailflow.Query, c mailflow.Cursor, limit int) (mailflow.Page, error) {
	s.queries.Add(1)
	return s.Store.Trace(ctx, q, c, limit)
}

// startManager runs a manager with the reconciler over st, watching only ns,
// until the test ends. It returns the reconciler (set up by the manager).
func startManager(t *testing.T, env *kubetest.Env, ns string, st store.Store, clk clock.PassiveClock, opts Options) *Reconciler {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Store: st, Clock: clk, Options: opts}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return r
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, c client.Client, ns, name string, spec v1alpha1.MessageTraceSpec) *v1alpha1.MessageTrace {
	t.Helper()
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := c.Create(testCtx(t), mt); err != nil {
		t.Fatalf("creating MessageTrace %s: %v", name, err)
	}
	return mt
}

// waitUntil polls the trace until ok says it is in the wanted state.
func waitUntil(t *testing.T, c client.Client, mt *v1alpha1.MessageTrace, what string, ok func(*v1alpha1.MessageTrace) bool) *v1alpha1.MessageTrace {
	t.Helper()
	got := &v1alpha1.MessageTrace{}
	kubetest.Eventually(t, waitFor, 100*time.Millisecond, func() (bool, string) {
		if err := c.Get(testCtx(t), client.ObjectKeyFromObject(mt), got); err != nil {
			return false, err.Error()
		}
		return ok(got), fmt.Sprintf("%s: %s is not %s; status %+v", mt.Name, mt.Name, what, got.Status)
	})
	return got
}

func isFinished(mt *v1alpha1.MessageTrace) bool { return mt.IsFinished() }

func reasonIs(t v1alpha1.ConditionType, s metav1.ConditionStatus, r v1alpha1.Reason) func(*v1alpha1.MessageTrace) bool {
	return func(mt *v1alpha1.MessageTrace) bool {
		c := mt.Condition(t)
		return c != nil && c.Status == s && c.Reason == string(r)
	}
}

// requireCondition checks one condition, including the generation it answers
// (kubectl wait ignores conditions of an older generation).
func requireCondition(t *testing.T, mt *v1alpha1.MessageTrace, ct v1alpha1.ConditionType, s metav1.ConditionStatus, r v1alpha1.Reason) *metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(mt.Status.Conditions, string(ct))
	if c == nil {
		t.Fatalf("%s: no %s condition in %+v", mt.Name, ct, mt.Status.Conditions)
	}
	if c.Status != s || c.Reason != string(r) {
		t.Fatalf("%s: %s=%s/%s (%q), want %s/%s", mt.Name, ct, c.Status, c.Reason, c.Message, s, r)
	}
	if c.ObservedGeneration != mt.Generation {
		t.Errorf("%s: %s has observedGeneration %d, object generation %d", mt.Name, ct, c.ObservedGeneration, mt.Generation)
	}
	if c.Message == "" || len(c.Message) > 1024 {
		t.Errorf("%s: %s message of %d bytes: %q", mt.Name, ct, len(c.Message), c.Message)
	}
	return c
}

// eventsFor waits for Events on the object with the given reasons.
func waitForEvents(t *testing.T, c client.Client, mt *v1alpha1.MessageTrace, reasons ...string) []eventsv1.Event {
	t.Helper()
	var found []eventsv1.Event
	kubetest.Eventually(t, waitFor, 200*time.Millisecond, func() (bool, string) {
		var list eventsv1.EventList
		if err := c.List(testCtx(t), &list, client.InNamespace(mt.Namespace)); err != nil {
			return false, err.Error()
		}
		found = found[:0]
		have := map[string]bool{}
		for _, e := range list.Items {
			if e.Regarding.Name == mt.Name && e.Regarding.Kind == "MessageTrace" {
				found = append(found, e)
				have[e.Reason] = true
			}
		}
		for _, r := range reasons {
			if !have[r] {
				return false, fmt.Sprintf("no %s Event for %s among %d", r, mt.Name, len(found))
			}
		}
		return true, ""
	})
	return found
}

// sortNewestFirst is the order of a trace: newest received first, then
// message trace ID, the rows of a message group-first (mailflow.CompareRows).
func sortNewestFirst(rows []mailflow.Row) {
	slices.SortStableFunc(rows, mailflow.CompareRows)
}
