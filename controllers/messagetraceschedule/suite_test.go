package messagetraceschedule

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	kubetest.Main(m, nil)
}

const waitFor = 30 * time.Second

// harness is one test's namespace, fake clock and (re)startable manager.
type harness struct {
	t     *testing.T
	env   *kubetest.Env
	c     client.Client
	ns    string
	clk   *clocktesting.FakePassiveClock
	base  time.Time
	stop  func()
	pokes atomic.Int64
}

// newHarness starts a manager with the schedule controller on a fake clock.
func newHarness(t *testing.T) *harness {
	env := kubetest.Get(t)
	// The fake clock starts at the real time, as the schedule's
	// creationTimestamp (which it cannot fake) is the real time. Close to
	// the top of an hour, wait for it to pass, so that the schedule is
	// surely created before the first tick after base.
	if left := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); left < 15*time.Second {
		time.Sleep(left + time.Second)
	}
	base := time.Now().UTC().Truncate(time.Second)
	h := &harness{t: t, env: env, c: env.Client, ns: kubetest.Namespace(t, env.Client), base: base,
		clk: clocktesting.NewFakePassiveClock(base)}
	h.start()
	t.Cleanup(func() { h.stopManager() })
	return h
}

func (h *harness) start() {
	h.t.Helper()
	mgr, err := ctrl.NewManager(h.env.Config, ctrl.Options{
		Scheme:                 h.env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := (&Reconciler{Clock: h.clk}).SetupWithManager(mgr); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("manager: %v", err)
		}
	}
}

func (h *harness) stopManager() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// tick returns the n-th tick (1-based) of an hourly schedule after base.
func (h *harness) tick(n int) time.Time {
	return h.base.Truncate(time.Hour).Add(time.Duration(n) * time.Hour)
}

// at moves the fake clock and pokes the schedule so that it reconciles now
// instead of at its real-time RequeueAfter (an annotation change is an
// ordinary reconcile trigger, as run-now is).
func (h *harness) at(s *v1alpha1.MessageTraceSchedule, now time.Time) {
	h.t.Helper()
	h.clk.SetTime(now)
	h.poke(s)
}

func (h *harness) poke(s *v1alpha1.MessageTraceSchedule) {
	h.t.Helper()
	h.annotate(s, "test.mailtrace.io/poke", strconv.FormatInt(h.pokes.Add(1), 10))
}

func (h *harness) annotate(s *v1alpha1.MessageTraceSchedule, k, v string) {
	h.t.Helper()
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v))
	if err := h.c.Patch(h.ctx(), s, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		h.t.Fatal(err)
	}
}

func hourly(name string, mutate ...func(*v1alpha1.MessageTraceSchedule)) *v1alpha1.MessageTraceSchedule {
	s := &v1alpha1.MessageTraceSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.MessageTraceScheduleSpec{
			Schedule: "0 * * * *",
			TimeZone: "Europe/Berlin",
			Window:   metav1.Duration{Duration: time.Hour},
			Template: v1alpha1.MessageTraceTemplate{
				Metadata: v1alpha1.TemplateMetadata{Labels: map[string]string{"team": "mail"}, Annotations: map[string]string{"note": "hourly"}},
				Spec:     v1alpha1.MessageTraceSpec{DeliveryStatuses: []v1alpha1.DeliveryStatus{"Failed"}},
			},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func (h *harness) create(s *v1alpha1.MessageTraceSchedule) *v1alpha1.MessageTraceSchedule {
	h.t.Helper()
	s.Namespace = h.ns
	if err := h.c.Create(h.ctx(), s); err != nil {
		h.t.Fatalf("create schedule: %v", err)
	}
	h.waitSchedule(s, "reconciled", func(s *v1alpha1.MessageTraceSchedule) bool { return s.Status.ObservedGeneration == s.Generation })
	return s
}

func (h *harness) get(s *v1alpha1.MessageTraceSchedule) *v1alpha1.MessageTraceSchedule {
	h.t.Helper()
	got := &v1alpha1.MessageTraceSchedule{}
	if err := h.c.Get(h.ctx(), client.ObjectKeyFromObject(s), got); err != nil {
		h.t.Fatal(err)
	}
	return got
}

func (h *harness) waitSchedule(s *v1alpha1.MessageTraceSchedule, what string, ok func(*v1alpha1.MessageTraceSchedule) bool) *v1alpha1.MessageTraceSchedule {
	h.t.Helper()
	got := &v1alpha1.MessageTraceSchedule{}
	kubetest.Eventually(h.t, waitFor, 50*time.Millisecond, func() (bool, string) {
		if err := h.c.Get(h.ctx(), client.ObjectKeyFromObject(s), got); err != nil {
			return false, err.Error()
		}
		return ok(got), fmt.Sprintf("schedule %s not %s: status %+v", s.Name, what, got.Status)
	})
	return got
}

// runs lists the schedule's runs (not being deleted), oldest tick first.
func (h *harness) runs(s *v1alpha1.MessageTraceSchedule) []v1alpha1.MessageTrace {
	h.t.Helper()
	var list v1alpha1.MessageTraceList
	if err := h.c.List(h.ctx(), &list, client.InNamespace(h.ns), client.MatchingLabels{v1alpha1.LabelSchedule: s.Name}); err != nil {
		h.t.Fatal(err)
	}
	var out []v1alpha1.MessageTrace
	for _, mt := range list.Items {
		if mt.DeletionTimestamp.IsZero() {
			out = append(out, mt)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.EndTime.Before(out[j].Spec.EndTime) })
	return out
}

func names(mts []v1alpha1.MessageTrace) []string {
	var out []string
	for _, mt := range mts {
		out = append(out, mt.Name)
	}
	return out
}

// waitRuns waits until the schedule has exactly the named runs.
func (h *harness) waitRuns(s *v1alpha1.MessageTraceSchedule, want ...string) []v1alpha1.MessageTrace {
	h.t.Helper()
	var got []v1alpha1.MessageTrace
	kubetest.Eventually(h.t, waitFor, 50*time.Millisecond, func() (bool, string) {
		got = h.runs(s)
		return fmt.Sprint(names(got)) == fmt.Sprint(want), fmt.Sprintf("runs %v, want %v", names(got), want)
	})
	return got
}

// finish marks a run Succeeded or Failed, as the MessageTrace controller
// would (it does not run in these tests).
func (h *harness) finish(name string, succeeded bool) {
	h.t.Helper()
	mt := &v1alpha1.MessageTrace{}
	if err := h.c.Get(h.ctx(), client.ObjectKey{Namespace: h.ns, Name: name}, mt); err != nil {
		h.t.Fatal(err)
	}
	now := metav1.NewTime(h.clk.Now())
	ct := v1alpha1.ConditionSucceeded
	if !succeeded {
		ct = v1alpha1.ConditionFailed
	}
	meta.SetStatusCondition(&mt.Status.Conditions, metav1.Condition{Type: string(ct), Status: metav1.ConditionTrue, Reason: "Completed", Message: "test", LastTransitionTime: now})
	mt.Status.CompletionTime = &now
	if err := h.c.Status().Update(h.ctx(), mt); err != nil {
		h.t.Fatal(err)
	}
}

// waitEvent waits for an Event with reason on the schedule and returns its note.
func (h *harness) waitEvent(s *v1alpha1.MessageTraceSchedule, reason string) string {
	h.t.Helper()
	var note string
	kubetest.Eventually(h.t, waitFor, 100*time.Millisecond, func() (bool, string) {
		var list eventsv1.EventList
		if err := h.c.List(h.ctx(), &list, client.InNamespace(h.ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name == s.Name && e.Regarding.Kind == "MessageTraceSchedule" {
				if e.Reason == reason {
					note = e.Note
					return true, ""
				}
				seen = append(seen, e.Reason)
			}
		}
		return false, fmt.Sprintf("no %s Event on %s; seen %v", reason, s.Name, seen)
	})
	return note
}
