package messagetraceschedule

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

const sec = time.Second

// Each tick creates one run named <schedule>-<unix minutes of the tick>
// tracing [tick - window, tick), labelled from the template plus the parent
// label, owned by the schedule; nothing runs between ticks.
func TestTicksCreateRunsWithWindowsAndNames(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("hourly", func(s *v1alpha1.MessageTraceSchedule) {
		s.Spec.ConcurrencyPolicy = v1alpha1.AllowConcurrent
	}))
	got := h.waitSchedule(s, "scheduled", func(s *v1alpha1.MessageTraceSchedule) bool { return s.Status.NextScheduleTime != nil })
	if !got.Status.NextScheduleTime.Equal(&metav1.Time{Time: h.tick(1)}) {
		t.Errorf("nextScheduleTime %v, want %v", got.Status.NextScheduleTime, h.tick(1))
	}
	if c := findCondition(got.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonScheduled) {
		t.Errorf("Ready %+v, want True/Scheduled", c)
	}
	h.at(s, h.tick(1).Add(-sec)) // just before: nothing
	h.waitSchedule(s, "poked", func(g *v1alpha1.MessageTraceSchedule) bool { return true })
	h.at(s, h.tick(1).Add(2*sec))
	one := v1alpha1.RunName("hourly", h.tick(1))
	h.waitRuns(s, one)
	h.at(s, h.tick(2))
	runs := h.waitRuns(s, one, v1alpha1.RunName("hourly", h.tick(2)))
	for i, mt := range runs {
		tick := h.tick(i + 1)
		if !mt.Spec.StartTime.Time.Equal(tick.Add(-time.Hour)) || !mt.Spec.EndTime.Time.Equal(tick) || mt.Spec.Window != nil {
			t.Errorf("%s: range [%v, %v) window %v, want [%v, %v)", mt.Name, mt.Spec.StartTime, mt.Spec.EndTime, mt.Spec.Window, tick.Add(-time.Hour), tick)
		}
		if len(mt.Labels) != 2 || mt.Labels["team"] != "mail" || mt.Labels[v1alpha1.LabelSchedule] != "hourly" || mt.Annotations["note"] != "hourly" {
			t.Errorf("%s: labels %v annotations %v", mt.Name, mt.Labels, mt.Annotations)
		}
		if len(mt.Spec.DeliveryStatuses) != 1 || mt.Spec.DeliveryStatuses[0] != "Failed" {
			t.Errorf("%s: spec %+v does not follow the template", mt.Name, mt.Spec)
		}
	}
	// Consecutive windows tile time.
	if !runs[0].Spec.EndTime.Equal(runs[1].Spec.StartTime) {
		t.Errorf("windows do not tile: %v then %v", runs[0].Spec.EndTime, runs[1].Spec.StartTime)
	}
	st := h.waitSchedule(s, "active 2", func(g *v1alpha1.MessageTraceSchedule) bool { return len(g.Status.Active) == 2 })
	if !st.Status.LastScheduleTime.Time.Equal(h.tick(2)) || !st.Status.NextScheduleTime.Time.Equal(h.tick(3)) {
		t.Errorf("last %v next %v", st.Status.LastScheduleTime, st.Status.NextScheduleTime)
	}
	h.finish(one, true)
	h.waitSchedule(s, "lastSuccessfulTime", func(g *v1alpha1.MessageTraceSchedule) bool {
		return g.Status.LastSuccessfulTime != nil && len(g.Status.Active) == 1
	})
	h.waitEvent(s, EventRunCreated)
}

// Forbid skips a tick while a run is active and says so in an Event; the
// tick is handled (not run later).
func TestForbidSkipsWhileActive(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("forbid"))
	h.at(s, h.tick(1))
	one := v1alpha1.RunName("forbid", h.tick(1))
	h.waitRuns(s, one)
	skipped := counterValue(scheduleActions.WithLabelValues(EventRunSkipped))
	h.at(s, h.tick(2))
	note := h.waitEvent(s, EventRunSkipped)
	t.Log(note)
	if got := counterValue(scheduleActions.WithLabelValues(EventRunSkipped)); got <= skipped {
		t.Errorf("mailtrace_schedule_actions_total{reason=RunSkipped} %v, was %v", got, skipped)
	}
	h.waitSchedule(s, "tick 2 handled", func(g *v1alpha1.MessageTraceSchedule) bool {
		return g.Status.LastScheduleTime != nil && g.Status.LastScheduleTime.Time.Equal(h.tick(2))
	})
	h.waitRuns(s, one)
	h.finish(one, true)
	h.at(s, h.tick(3))
	h.waitRuns(s, one, v1alpha1.RunName("forbid", h.tick(3)))
}

// Replace deletes the active run and starts the new one.
func TestReplaceReplacesTheActiveRun(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("replace", func(s *v1alpha1.MessageTraceSchedule) { s.Spec.ConcurrencyPolicy = v1alpha1.ReplaceConcurrent }))
	h.at(s, h.tick(1))
	h.waitRuns(s, v1alpha1.RunName("replace", h.tick(1)))
	h.at(s, h.tick(2))
	h.waitRuns(s, v1alpha1.RunName("replace", h.tick(2)))
	h.waitEvent(s, EventRunReplaced)
}

// Suspend stops ticks (Ready False/Suspended, no next time); resuming runs
// the tick missed while suspended once, as after downtime.
func TestSuspendStopsRuns(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("suspended", func(s *v1alpha1.MessageTraceSchedule) {
		s.Spec.Suspend = true
		s.Spec.StartingDeadlineSeconds = ptr.To[int64](300)
	}))
	h.at(s, h.tick(1))
	h.at(s, h.tick(2).Add(sec))
	g := h.waitSchedule(s, "suspended", func(g *v1alpha1.MessageTraceSchedule) bool {
		c := findCondition(g.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Reason == string(v1alpha1.ReasonSuspended)
	})
	if g.Status.NextScheduleTime != nil || len(h.runs(s)) != 0 {
		t.Errorf("suspended schedule: next %v, runs %v", g.Status.NextScheduleTime, names(h.runs(s)))
	}
	// Resumed an hour later: tick 2 is past the 5-minute deadline, so it
	// is missed, and tick 3 runs.
	h.clk.SetTime(h.tick(3).Add(-time.Minute))
	g.Spec.Suspend = false
	if err := h.c.Update(h.ctx(), g); err != nil {
		t.Fatal(err)
	}
	h.waitEvent(s, EventMissedSchedule)
	if len(h.runs(s)) != 0 {
		t.Errorf("a tick past the deadline ran: %v", names(h.runs(s)))
	}
	h.at(s, h.tick(3))
	h.waitRuns(s, v1alpha1.RunName("suspended", h.tick(3)))
}

// History limits keep the newest succeeded and failed runs.
func TestHistoryPruningKeepsTheLimits(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("history", func(s *v1alpha1.MessageTraceSchedule) {
		s.Spec.SuccessfulRunsHistoryLimit = ptr.To[int32](2)
		s.Spec.FailedRunsHistoryLimit = ptr.To[int32](1)
	}))
	outcome := []bool{true, false, true, false, true, true}
	var want []string
	for i, ok := range outcome {
		tick := h.tick(i + 1)
		name := v1alpha1.RunName("history", tick)
		h.at(s, tick)
		kubetest.Eventually(t, waitFor, 50*time.Millisecond, func() (bool, string) {
			for _, mt := range h.runs(s) {
				if mt.Name == name {
					return true, ""
				}
			}
			return false, "no run " + name
		})
		h.finish(name, ok)
		want = append(want, name)
	}
	// Kept: the failed run of tick 4 and the succeeded runs of ticks 5 and 6.
	h.poke(s)
	h.waitRuns(s, want[3], want[4], want[5])
}

// A manager restart between ticks neither misses nor duplicates a run, and a
// run that exists already (created before a lost status write) is adopted.
func TestRestartNeitherMissesNorDuplicates(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("restart", func(s *v1alpha1.MessageTraceSchedule) { s.Spec.ConcurrencyPolicy = v1alpha1.AllowConcurrent }))
	one := v1alpha1.RunName("restart", h.tick(1))
	h.at(s, h.tick(1))
	h.waitRuns(s, one)

	h.stopManager()
	h.clk.SetTime(h.tick(1).Add(30 * time.Minute)) // between ticks
	h.start()
	h.poke(s)
	h.waitSchedule(s, "seen", func(g *v1alpha1.MessageTraceSchedule) bool {
		return g.Status.NextScheduleTime != nil && g.Status.NextScheduleTime.Time.Equal(h.tick(2))
	})
	if got := names(h.runs(s)); len(got) != 1 {
		t.Fatalf("after a restart between ticks: runs %v, want [%s]", got, one)
	}

	// Down over tick 2: it runs once when the manager is back.
	h.stopManager()
	h.clk.SetTime(h.tick(2).Add(10 * time.Minute))
	h.start()
	h.poke(s)
	two := v1alpha1.RunName("restart", h.tick(2))
	h.waitRuns(s, one, two)

	// Tick 3's run exists already without an owner (as if created by a
	// controller whose status write was lost, or by hand): it is adopted.
	three := v1alpha1.RunName("restart", h.tick(3))
	pre, err := NewRun(h.get(s), three, h.tick(3), func(_, _ metav1.Object) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.Create(h.ctx(), pre); err != nil {
		t.Fatal(err)
	}
	h.at(s, h.tick(3))
	kubetest.Eventually(t, waitFor, 50*time.Millisecond, func() (bool, string) {
		runs := h.runs(s)
		return len(runs) == 3 && runs[2].Name == three && metav1.IsControlledBy(&runs[2], h.get(s)),
			fmt.Sprintf("runs %v: %s not adopted", names(runs), three)
	})
	h.waitEvent(s, EventRunAdopted)
	h.poke(s)
	h.poke(s)
	h.waitSchedule(s, "tick 3 handled", func(g *v1alpha1.MessageTraceSchedule) bool {
		return g.Status.LastScheduleTime.Time.Equal(h.tick(3))
	})
	if got := names(h.runs(s)); len(got) != 3 {
		t.Errorf("runs %v, want three", got)
	}
}

// Deleting the schedule deletes its runs: every run has the schedule as its
// controller owner with blockOwnerDeletion, which is what the garbage
// collector follows. envtest runs no garbage collector (it is part of
// kube-controller-manager), so the test asserts the owner references rather
// than waiting for a deletion that would never come here.
func TestRunsAreOwnedSoDeletingTheScheduleDeletesThem(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("owned"))
	h.at(s, h.tick(1))
	runs := h.waitRuns(s, v1alpha1.RunName("owned", h.tick(1)))
	s = h.get(s)
	refs := runs[0].OwnerReferences
	if len(refs) != 1 {
		t.Fatalf("owner references %+v, want one", refs)
	}
	r := refs[0]
	if r.UID != s.UID || r.Kind != "MessageTraceSchedule" || r.APIVersion != v1alpha1.GroupVersion.String() || r.Name != s.Name ||
		!ptr.Deref(r.Controller, false) || !ptr.Deref(r.BlockOwnerDeletion, false) {
		t.Errorf("owner reference %+v: want the schedule (uid %s) as controller with blockOwnerDeletion", r, s.UID)
	}
}

// A GitOps tool re-applying the same manifest changes nothing: the
// controller never writes spec, so server-side apply finds no difference,
// the generation stays, the apply manager owns all of spec, and no run starts.
func TestGitOpsReapplyChangesNothing(t *testing.T) {
	h := newHarness(t)
	manifest := `apiVersion: mailtrace.io/v1alpha1
kind: MessageTraceSchedule
metadata:
  name: gitops
  namespace: ` + h.ns + `
spec:
  schedule: "0 * * * *"
  timeZone: Europe/Berlin
  window: 1h
  template:
    metadata:
      labels: {team: mail}
    spec:
      deliveryStatuses: [Failed]
`
	apply := func() *v1alpha1.MessageTraceSchedule {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := h.c.Patch(h.ctx(), u, client.Apply, client.FieldOwner("argocd"), client.ForceOwnership); err != nil {
			t.Fatalf("apply: %v", err)
		}
		return h.get(&v1alpha1.MessageTraceSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "gitops"}})
	}
	first := apply()
	s := h.waitSchedule(first, "reconciled", func(g *v1alpha1.MessageTraceSchedule) bool { return g.Status.NextScheduleTime != nil })
	second := apply()
	if second.Generation != first.Generation || second.ResourceVersion != s.ResourceVersion {
		t.Errorf("re-apply changed the object: generation %d -> %d, resourceVersion %s -> %s",
			first.Generation, second.Generation, s.ResourceVersion, second.ResourceVersion)
	}
	for _, mf := range second.ManagedFields {
		if mf.Manager != "argocd" && mf.Subresource == "" {
			t.Errorf("manager %s owns fields of the object outside status: %s", mf.Manager, mf.FieldsV1.String())
		}
	}
	if len(h.runs(s)) != 0 {
		t.Errorf("re-apply started runs: %v", names(h.runs(s)))
	}
}

// The run-now annotation starts one run per distinct value, at once.
func TestRunNowRunsOncePerToken(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("manual", func(s *v1alpha1.MessageTraceSchedule) { s.Spec.Suspend = true }))
	h.annotate(s, v1alpha1.AnnotationRunNow, "2026-05-01-a")
	kubetest.Eventually(t, waitFor, 50*time.Millisecond, func() (bool, string) {
		return len(h.runs(s)) == 1, "no run-now run"
	})
	h.waitSchedule(s, "token recorded", func(g *v1alpha1.MessageTraceSchedule) bool { return g.Status.LastRunNowToken == "2026-05-01-a" })
	h.poke(s)
	h.poke(s)
	h.annotate(s, v1alpha1.AnnotationRunNow, "2026-05-01-b")
	kubetest.Eventually(t, waitFor, 50*time.Millisecond, func() (bool, string) {
		return len(h.runs(s)) == 2, "want a second run"
	})
	h.waitSchedule(s, "token b recorded", func(g *v1alpha1.MessageTraceSchedule) bool { return g.Status.LastRunNowToken == "2026-05-01-b" })
	if n := len(h.runs(s)); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
	run := h.runs(s)[1]
	if !run.Spec.EndTime.Time.Equal(h.base) || !run.Spec.StartTime.Time.Equal(h.base.Add(-time.Hour)) {
		t.Errorf("run-now range [%v, %v), want the window ending now (%v)", run.Spec.StartTime, run.Spec.EndTime, h.base)
	}
}

// An unknown time zone is reported as Ready False/InvalidSchedule.
func TestInvalidTimeZoneIsReported(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("badzone", func(s *v1alpha1.MessageTraceSchedule) { s.Spec.TimeZone = "Europe/Atlantis" }))
	g := h.waitSchedule(s, "invalid", func(g *v1alpha1.MessageTraceSchedule) bool {
		c := findCondition(g.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == string(v1alpha1.ReasonInvalidSchedule)
	})
	if g.Status.NextScheduleTime != nil {
		t.Errorf("next %v for an invalid schedule", g.Status.NextScheduleTime)
	}
	h.waitEvent(s, EventInvalid)
}

var _ = corev1.EventTypeNormal

// A replaced run held by a finalizer (a report with deletionPolicy Delete
// being cleaned up) is no longer counted as active.
func TestReplacedRunHeldByAFinalizerIsNotActive(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("held", func(s *v1alpha1.MessageTraceSchedule) { s.Spec.ConcurrencyPolicy = v1alpha1.ReplaceConcurrent }))
	one := v1alpha1.RunName("held", h.tick(1))
	h.at(s, h.tick(1))
	h.waitRuns(s, one)
	mt := &v1alpha1.MessageTrace{}
	if err := h.c.Get(h.ctx(), client.ObjectKey{Namespace: h.ns, Name: one}, mt); err != nil {
		t.Fatal(err)
	}
	mt.Finalizers = []string{"test.mailtrace.io/hold"}
	if err := h.c.Update(h.ctx(), mt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.c.Get(h.ctx(), client.ObjectKeyFromObject(mt), mt); err == nil {
			mt.Finalizers = nil
			_ = h.c.Update(h.ctx(), mt)
		}
	})
	two := v1alpha1.RunName("held", h.tick(2))
	h.at(s, h.tick(2))
	h.waitRuns(s, two)
	h.poke(s)
	h.waitSchedule(s, "only the new run active", func(g *v1alpha1.MessageTraceSchedule) bool {
		return len(g.Status.Active) == 1 && g.Status.Active[0].Name == two
	})
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
