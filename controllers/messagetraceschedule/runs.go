package messagetraceschedule

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// NewRun builds the MessageTrace of schedule s ending at tick: the template's
// labels (plus only the parent label) and annotations, the template's spec
// with the absolute range [tick - window, tick), and s as its controller
// owner with blockOwnerDeletion, so deleting s deletes it.
func NewRun(s *v1alpha1.MessageTraceSchedule, name string, tick time.Time, setOwner func(owner, obj metav1.Object) error) (*v1alpha1.MessageTrace, error) {
	mt := &v1alpha1.MessageTrace{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   s.Namespace,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		},
		Spec: *s.Spec.Template.Spec.DeepCopy(),
	}
	for k, v := range s.Spec.Template.Metadata.Labels {
		mt.Labels[k] = v
	}
	mt.Labels[v1alpha1.LabelSchedule] = s.Name
	for k, v := range s.Spec.Template.Metadata.Annotations {
		mt.Annotations[k] = v
	}
	// A run is the schedule's, not a person's autosaved query (and the
	// admission policy would refuse another user's name from the manager).
	delete(mt.Labels, v1alpha1.LabelAutosave)
	delete(mt.Annotations, v1alpha1.AnnotationCreatedBy)
	if len(mt.Annotations) == 0 {
		mt.Annotations = nil
	}
	tick = tick.UTC()
	mt.Spec.Window = nil
	mt.Spec.StartTime = ptrTime(tick.Add(-s.Spec.Window.Duration))
	mt.Spec.EndTime = ptrTime(tick)
	if err := setOwner(s, mt); err != nil {
		return nil, err
	}
	return mt, nil
}

// createRun creates the run, or adopts the one that already has its name:
// ours already (a retry after a lost status write), or without a controller
// (then it gets s as controller and the parent label).
func (r *Reconciler) createRun(ctx context.Context, p *pass, name string, tick time.Time) (created bool, err error) {
	mt, err := NewRun(p.s, name, tick, func(owner, obj metav1.Object) error {
		return controllerutil.SetControllerReference(owner, obj, r.Scheme)
	})
	if err != nil {
		return false, err
	}
	err = r.Client.Create(ctx, mt)
	switch {
	case err == nil:
		created = true
	case apierrors.IsAlreadyExists(err):
		mt = &v1alpha1.MessageTrace{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.s.Namespace, Name: name}, mt); err != nil {
			return false, fmt.Errorf("read existing run %s: %w", name, err)
		}
		if !metav1.IsControlledBy(mt, p.s) {
			if c := metav1.GetControllerOf(mt); c != nil {
				return false, fmt.Errorf("run name %s is taken by a MessageTrace controlled by %s %s", name, c.Kind, c.Name)
			}
			if err := controllerutil.SetControllerReference(p.s, mt, r.Scheme); err != nil {
				return false, err
			}
			if mt.Labels == nil {
				mt.Labels = map[string]string{}
			}
			mt.Labels[v1alpha1.LabelSchedule] = p.s.Name
			if err := r.Client.Update(ctx, mt); err != nil {
				return false, fmt.Errorf("adopt run %s: %w", name, err)
			}
		}
	default:
		return false, fmt.Errorf("create run %s: %w", name, err)
	}
	if !r.exists(p, name) {
		p.runs = append(p.runs, *mt)
	}
	r.refreshRuns(p)
	return created, nil
}

// maxHistory is the most runs status.history lists.
const maxHistory = 100

// runNowInfix is in the name of every run started by run-now.
const runNowInfix = "-now-"

// History is the schedule's runs as status.history lists them: newest
// first (by the end of their range, then name), at most limit, runs being
// deleted left out.
func History(runs []v1alpha1.MessageTrace, limit int) []v1alpha1.RunStatus {
	var out []v1alpha1.RunStatus
	for i := range runs {
		mt := &runs[i]
		if !mt.DeletionTimestamp.IsZero() {
			continue
		}
		h := v1alpha1.RunStatus{
			Name:           mt.Name,
			ScheduledTime:  metav1.NewTime(tickOf(mt)),
			RunNow:         mt.Labels[v1alpha1.LabelSchedule] != "" && strings.HasPrefix(mt.Name, mt.Labels[v1alpha1.LabelSchedule]+runNowInfix),
			Phase:          mt.Status.Phase,
			CompletionTime: mt.Status.CompletionTime.DeepCopy(),
			TotalMatches:   mt.Status.TotalMatches,
		}
		if c := findCondition(mt.Status.Conditions, v1alpha1.ConditionSucceeded); c != nil {
			h.Reason = c.Reason
		}
		out = append(out, h)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].ScheduledTime.Equal(&out[j].ScheduledTime) {
			return out[j].ScheduledTime.Before(&out[i].ScheduledTime)
		}
		return out[i].Name > out[j].Name
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// stateOf classifies a run.
func stateOf(mt *v1alpha1.MessageTrace) RunState {
	switch {
	case meta.IsStatusConditionTrue(mt.Status.Conditions, string(v1alpha1.ConditionSucceeded)):
		return RunSucceeded
	case meta.IsStatusConditionTrue(mt.Status.Conditions, string(v1alpha1.ConditionFailed)):
		return RunFailed
	default:
		return RunActive
	}
}

// tickOf is the tick a run traces up to: its endTime.
func tickOf(mt *v1alpha1.MessageTrace) time.Time {
	if mt.Spec.EndTime != nil {
		return mt.Spec.EndTime.UTC()
	}
	return mt.CreationTimestamp.UTC()
}

func locationOf(s *v1alpha1.MessageTraceSchedule) *time.Location {
	if loc, err := s.Spec.Location(); err == nil {
		return loc
	}
	return time.UTC
}

func findCondition(cs []metav1.Condition, t v1alpha1.ConditionType) *metav1.Condition {
	return meta.FindStatusCondition(cs, string(t))
}

func ptrTime(t time.Time) *metav1.Time {
	v := metav1.NewTime(t.UTC())
	return &v
}
