package messagetraceschedule

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

// A schedule without spec.schedule is a saved query: Ready OnDemand, no
// next tick and no tick ever, however the clock moves; each new run-now
// token starts one run (the same token again starts none); the runs are in
// status.history newest first with their phase, and the history limits
// prune them as a scheduled one's.
func TestSavedQueryRunsOnDemandWithHistory(t *testing.T) {
	h := newHarness(t)
	s := h.create(hourly("saved", func(s *v1alpha1.MessageTraceSchedule) {
		s.Spec.Schedule = ""
		s.Spec.SuccessfulRunsHistoryLimit = ptr.To[int32](2)
		s.Spec.Template.Metadata.Labels[v1alpha1.LabelAutosave] = "true"
		s.Spec.Template.Metadata.Annotations[v1alpha1.AnnotationCreatedBy] = "someone-else"
	}))
	g := h.waitSchedule(s, "on demand", func(g *v1alpha1.MessageTraceSchedule) bool {
		c := findCondition(g.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == string(v1alpha1.ReasonOnDemand)
	})
	if g.Status.NextScheduleTime != nil || g.Status.LastScheduleTime != nil || len(g.Status.History) != 0 {
		t.Errorf("a saved query has next %v, last %v, history %v", g.Status.NextScheduleTime, g.Status.LastScheduleTime, g.Status.History)
	}
	h.at(s, h.tick(3)) // hours pass: nothing runs by itself
	h.waitSchedule(s, "poked", func(g *v1alpha1.MessageTraceSchedule) bool { return g.Status.ObservedGeneration == g.Generation })
	if n := len(h.runs(s)); n != 0 {
		t.Fatalf("%d runs of a saved query nobody ran", n)
	}

	var names []string
	for i := range 3 {
		h.clk.SetTime(h.tick(3).Add(time.Duration(i) * time.Minute))
		token := fmt.Sprintf("click-%d", i)
		h.annotate(s, v1alpha1.AnnotationRunNow, token)
		g := h.waitSchedule(s, "ran "+token, func(g *v1alpha1.MessageTraceSchedule) bool {
			return g.Status.LastRunNowToken == token && len(g.Status.History) > 0 && g.Status.History[0].ScheduledTime.Time.Equal(h.clk.Now())
		})
		run := g.Status.History[0]
		if !run.RunNow || g.Status.LastRunTime == nil {
			t.Errorf("history %+v, last run %v", g.Status.History, g.Status.LastRunTime)
		}
		h.poke(s) // the same token again: nothing more
		names = append(names, run.Name)
		h.finish(run.Name, true)
	}
	runs := h.waitRuns(s, names[1], names[2])
	for _, mt := range runs {
		if mt.Labels[v1alpha1.LabelAutosave] != "" || mt.Annotations[v1alpha1.AnnotationCreatedBy] != "" {
			t.Errorf("run %s carries the autosave label or created-by annotation: %v %v", mt.Name, mt.Labels, mt.Annotations)
		}
		if want := h.tick(3).Add(-time.Hour); mt.Spec.StartTime.Time.Before(want) {
			t.Errorf("run %s starts at %v, before the window of its run-now", mt.Name, mt.Spec.StartTime)
		}
	}
	g = h.waitSchedule(s, "history of the two kept runs", func(g *v1alpha1.MessageTraceSchedule) bool {
		return len(g.Status.History) == 2 && g.Status.History[0].Name == names[2] && g.Status.History[1].Name == names[1] &&
			g.Status.History[0].CompletionTime != nil
	})
	if c := findCondition(g.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Reason != string(v1alpha1.ReasonOnDemand) {
		t.Errorf("Ready %+v after runs", c)
	}
	_ = kubetest.Namespace
}

func TestHistoryIsNewestFirst(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	run := func(name string, end time.Duration, phase v1alpha1.Phase) v1alpha1.MessageTrace {
		e := metav1.NewTime(t0.Add(end))
		return v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.LabelSchedule: "q"}},
			Spec: v1alpha1.MessageTraceSpec{EndTime: &e}, Status: v1alpha1.MessageTraceStatus{Phase: phase, TotalMatches: 3}}
	}
	gone := run("q-5", 5*time.Hour, "")
	gone.DeletionTimestamp = &metav1.Time{Time: t0}
	runs := []v1alpha1.MessageTrace{run("q-1", time.Hour, v1alpha1.PhaseSucceeded), run("q-now-0000abcd", 3*time.Hour, v1alpha1.PhaseRunning),
		run("q-2", 2*time.Hour, v1alpha1.PhaseFailed), gone}
	got := History(runs, 10)
	if len(got) != 3 || got[0].Name != "q-now-0000abcd" || !got[0].RunNow || got[1].Name != "q-2" || got[1].RunNow || got[2].Name != "q-1" ||
		got[2].Phase != v1alpha1.PhaseSucceeded || got[2].TotalMatches != 3 {
		t.Errorf("history %+v", got)
	}
	if got := History(runs, 1); len(got) != 1 || got[0].Name != "q-now-0000abcd" {
		t.Errorf("history limited to 1: %+v", got)
	}
}
