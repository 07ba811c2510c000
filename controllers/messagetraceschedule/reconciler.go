// Package messagetraceschedule is the MessageTraceSchedule controller: at
// each tick of a schedule it creates a MessageTrace from the template for the
// window ending at the tick. It sleeps with RequeueAfter until the next tick
// (no timer in memory, so a restart loses nothing), names runs
// deterministically so a retry adopts instead of duplicating, and never
// writes the schedule's spec.
package messagetraceschedule

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
)

// ControllerName names the controller, its Events' reporting controller and its logger.
const ControllerName = "messagetraceschedule"

// scheduleIndex is the field index of MessageTraces on their parent label.
const scheduleIndex = "metadata.labels." + v1alpha1.LabelSchedule

// Event reasons.
const (
	EventRunCreated     = "RunCreated"
	EventRunAdopted     = "RunAdopted"
	EventRunSkipped     = "RunSkipped"
	EventRunReplaced    = "RunReplaced"
	EventMissedSchedule = "MissedSchedule"
	EventRunPruned      = "RunPruned"
	EventRunNow         = "RunNow"
	EventInvalid        = "InvalidSchedule"
)

// Reconciler runs MessageTraceSchedules. Client, Scheme, Recorder and Clock
// default (in SetupWithManager) to the manager's and the real clock.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraceschedules,verbs=get;list;watch
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraceschedules/status,verbs=get;patch
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces,verbs=get;list;watch;create;update;patch;delete

// SetupWithManager registers the reconciler and the index of runs on their
// parent label. Spec changes and annotation changes (run-now) start a
// reconcile; so does any change of a run.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	controllerkit.Default(&r.Client, mgr.GetClient())
	controllerkit.Default(&r.Scheme, mgr.GetScheme())
	controllerkit.Default[events.EventRecorder](&r.Recorder, mgr.GetEventRecorder(ControllerName))
	controllerkit.Default[clock.PassiveClock](&r.Clock, clock.RealClock{})
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.MessageTrace{}, scheduleIndex,
		func(o client.Object) []string {
			if v := o.GetLabels()[v1alpha1.LabelSchedule]; v != "" {
				return []string{v}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("index MessageTraces on %s: %w", v1alpha1.LabelSchedule, err)
	}
	return ctrl.ControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.MessageTraceSchedule{}, ctrl.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&v1alpha1.MessageTrace{}).
		Complete(r)
}

// pass is what the steps of one reconcile share.
type pass struct {
	s        *v1alpha1.MessageTraceSchedule
	orig     *v1alpha1.MessageTraceSchedule
	now      time.Time
	sched    cron.Schedule
	runs     []v1alpha1.MessageTrace // controlled by s
	active   []v1alpha1.MessageTrace
	requeue  time.Duration
	outcomes []event
}

type event struct{ typ, reason, msg string }

func (p *pass) event(typ, reason, format string, args ...any) {
	p.outcomes = append(p.outcomes, event{typ, reason, fmt.Sprintf(format, args...)})
}

// Reconcile handles one schedule: the run-now annotation, the due tick,
// pruning, and status, written once at the end.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, err error) {
	s := &v1alpha1.MessageTraceSchedule{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !s.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	orig := s.DeepCopy()
	p := &pass{s: s, orig: orig, now: r.Clock.Now().UTC()}
	defer func() {
		// A conflict requeues: the schedule is read again and decided again.
		res, err = controllerkit.AfterWrite(res, err, r.writeStatus(ctx, orig, p))
	}()
	for _, step := range []func(context.Context, *pass) error{r.listRuns, r.parse, r.runNow, r.runTick, r.prune, r.history} {
		if err := step(ctx, p); err != nil {
			if errors.Is(err, errStop) {
				break
			}
			return reconcile.Result{}, err
		}
	}
	if p.requeue > 0 {
		return reconcile.Result{RequeueAfter: p.requeue}, nil
	}
	return reconcile.Result{}, nil
}

// errStop ends the steps of a reconcile without an error.
var errStop = errors.New("stop")

// listRuns reads the schedule's runs through the parent-label index, keeps
// those it controls, and derives active runs and the last success.
func (r *Reconciler) listRuns(ctx context.Context, p *pass) error {
	var list v1alpha1.MessageTraceList
	if err := r.Client.List(ctx, &list, client.InNamespace(p.s.Namespace), client.MatchingFields{scheduleIndex: p.s.Name}); err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	p.runs = p.runs[:0]
	for _, mt := range list.Items {
		if metav1.IsControlledBy(&mt, p.s) {
			p.runs = append(p.runs, mt)
		}
	}
	r.refreshRuns(p)
	return nil
}

func (r *Reconciler) refreshRuns(p *pass) {
	p.active = p.active[:0]
	st := &p.s.Status
	st.Active = nil
	for _, mt := range p.runs {
		if !mt.DeletionTimestamp.IsZero() {
			continue // replaced or pruned, waiting for a finalizer: not active any more
		}
		switch stateOf(&mt) {
		case RunActive:
			p.active = append(p.active, mt)
			st.Active = append(st.Active, v1alpha1.RunReference{Name: mt.Name, ScheduledTime: metav1.NewTime(tickOf(&mt))})
		case RunSucceeded:
			if c := mt.Status.CompletionTime; c != nil && (st.LastSuccessfulTime == nil || c.After(st.LastSuccessfulTime.Time)) {
				st.LastSuccessfulTime = c.DeepCopy()
			}
		}
	}
	sort.Slice(st.Active, func(i, j int) bool { return st.Active[i].ScheduledTime.Before(&st.Active[j].ScheduledTime) })
	if len(st.Active) > 100 {
		st.Active = st.Active[len(st.Active)-100:]
	}
}

// parse reads the cron schedule and time zone; suspension stops here too.
// A saved query (no schedule) has no ticks: p.sched stays nil.
func (r *Reconciler) parse(_ context.Context, p *pass) error {
	st := &p.s.Status
	if p.s.Spec.OnDemand() {
		return nil
	}
	sched, err := p.s.Spec.CronSchedule()
	if err != nil {
		st.NextScheduleTime = nil
		r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonInvalidSchedule, err.Error())
		if c := findCondition(p.orig.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Reason != string(v1alpha1.ReasonInvalidSchedule) {
			p.event("Warning", EventInvalid, "%s", err.Error())
		}
		// Run-now waits too: a schedule that cannot be read is not trusted with runs.
		return errStop
	}
	p.sched = NewWallClock(sched)
	return nil
}

// runNow starts one run for each new value of the run-now annotation. It
// runs whatever the concurrency policy and suspension say: it is an explicit
// request. The run's name is derived from the token, so a retry adopts it.
func (r *Reconciler) runNow(ctx context.Context, p *pass) error {
	token := p.s.Annotations[v1alpha1.AnnotationRunNow]
	if token == "" || token == p.s.Status.LastRunNowToken {
		return nil
	}
	if len(token) > 256 {
		token = token[:256]
		if token == p.s.Status.LastRunNowToken {
			return nil
		}
	}
	h := fnv.New32a()
	h.Write([]byte(token))
	name := fmt.Sprintf("%s%s%08x", p.s.Name, runNowInfix, h.Sum32())
	created, err := r.createRun(ctx, p, name, p.now.Truncate(time.Second))
	if err != nil {
		return err
	}
	verb := "started"
	if !created {
		verb = "adopted"
	}
	p.event("Normal", EventRunNow, "%s run %s for %s=%q", verb, name, v1alpha1.AnnotationRunNow, token)
	p.s.Status.LastRunNowToken = token
	return nil
}

// onDemand is the state of a saved query: no tick, ever; runs start only
// from run-now.
func (r *Reconciler) onDemand(p *pass) {
	st := &p.s.Status
	st.NextScheduleTime = nil
	msg := "a saved query: no spec.schedule, so it runs only when the " + v1alpha1.AnnotationRunNow + " annotation gets a new value"
	if p.s.Spec.Suspend {
		msg += " (spec.suspend does not stop run-now)"
	}
	r.setReady(p, metav1.ConditionTrue, v1alpha1.ReasonOnDemand, msg)
}

// runTick runs the due tick under the concurrency policy, records missed
// ticks, and sleeps until the next one.
func (r *Reconciler) runTick(ctx context.Context, p *pass) error {
	st := &p.s.Status
	if p.sched == nil {
		r.onDemand(p)
		return nil
	}
	if p.s.Spec.Suspend {
		st.NextScheduleTime = nil
		r.setReady(p, metav1.ConditionFalse, v1alpha1.ReasonSuspended, "spec.suspend is true: no tick runs; active runs go on")
		return nil
	}
	since := p.s.CreationTimestamp.Time
	if st.LastScheduleTime != nil && st.LastScheduleTime.After(since) {
		since = st.LastScheduleTime.Time
	}
	d := Decide(p.sched, since, p.now, p.s.Spec.StartingDeadline())
	if d.Skipped > 0 {
		p.event("Warning", EventMissedSchedule, "%d tick(s) since %s were missed while the controller was away; only the most recent runs",
			d.Skipped, since.UTC().Format(time.RFC3339))
	}
	switch {
	case !d.Late.IsZero():
		p.event("Warning", EventMissedSchedule, "the tick of %s was missed: it is more than startingDeadlineSeconds (%d) late",
			d.Late.UTC().Format(time.RFC3339), *p.s.Spec.StartingDeadlineSeconds)
		st.LastScheduleTime = ptrTime(d.Late)
	case !d.Tick.IsZero():
		if err := r.startTick(ctx, p, d.Tick); err != nil {
			return err
		}
		st.LastScheduleTime = ptrTime(d.Tick)
	}
	st.NextScheduleTime = ptrTime(d.Next)
	p.requeue = max(d.Next.Sub(p.now), time.Second)
	r.setReady(p, metav1.ConditionTrue, v1alpha1.ReasonScheduled,
		fmt.Sprintf("next run at %s (%s)", d.Next.In(locationOf(p.s)).Format(time.RFC3339), p.s.Spec.TimeZone))
	return nil
}

// startTick applies the concurrency policy and creates (or adopts) the run of tick.
func (r *Reconciler) startTick(ctx context.Context, p *pass, tick time.Time) error {
	name := v1alpha1.RunName(p.s.Name, tick)
	var others []v1alpha1.MessageTrace
	for _, mt := range p.active {
		if mt.Name != name {
			others = append(others, mt)
		}
	}
	if len(others) > 0 {
		switch p.s.Spec.Policy() {
		case v1alpha1.ForbidConcurrent:
			if !r.exists(p, name) {
				p.event("Normal", EventRunSkipped, "the tick of %s was skipped: run %s is still active (concurrencyPolicy Forbid)",
					tick.UTC().Format(time.RFC3339), others[0].Name)
				return nil
			}
		case v1alpha1.ReplaceConcurrent:
			for i := range others {
				if err := r.Client.Delete(ctx, &others[i], client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
					return fmt.Errorf("delete active run %s: %w", others[i].Name, err)
				}
				p.event("Normal", EventRunReplaced, "deleted active run %s to start %s (concurrencyPolicy Replace)", others[i].Name, name)
				p.drop(others[i].Name)
			}
		}
	}
	created, err := r.createRun(ctx, p, name, tick)
	if err != nil {
		return err
	}
	if created {
		p.event("Normal", EventRunCreated, "created run %s for the tick of %s", name, tick.UTC().Format(time.RFC3339))
	} else {
		p.event("Normal", EventRunAdopted, "run %s of the tick of %s already existed: adopted", name, tick.UTC().Format(time.RFC3339))
	}
	return nil
}

func (r *Reconciler) exists(p *pass, name string) bool {
	for _, mt := range p.runs {
		if mt.Name == name {
			return true
		}
	}
	return false
}

func (p *pass) drop(name string) {
	for i := range p.runs {
		if p.runs[i].Name == name {
			p.runs = append(p.runs[:i], p.runs[i+1:]...)
			break
		}
	}
}

// prune deletes finished runs beyond the history limits.
func (r *Reconciler) prune(ctx context.Context, p *pass) error {
	var runs []Run
	byName := map[string]*v1alpha1.MessageTrace{}
	for i := range p.runs {
		mt := &p.runs[i]
		if !mt.DeletionTimestamp.IsZero() {
			continue
		}
		byName[mt.Name] = mt
		runs = append(runs, Run{Name: mt.Name, Tick: tickOf(mt), State: stateOf(mt)})
	}
	pruned := ToPrune(runs, p.s.Spec.SuccessfulLimit(), p.s.Spec.FailedLimit())
	for _, name := range pruned {
		if err := r.Client.Delete(ctx, byName[name], client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("prune run %s: %w", name, err)
		}
		log.FromContext(ctx).V(1).Info("pruned run", "run", name)
	}
	for _, name := range pruned {
		p.drop(name)
	}
	return nil
}

// history records the runs the schedule keeps, newest first, and when the
// newest started.
func (r *Reconciler) history(_ context.Context, p *pass) error {
	st := &p.s.Status
	st.History = History(p.runs, maxHistory)
	st.LastRunTime = nil
	for i := range p.runs {
		if c := p.runs[i].CreationTimestamp; !c.IsZero() && (st.LastRunTime == nil || c.After(st.LastRunTime.Time)) {
			st.LastRunTime = c.DeepCopy()
		}
	}
	return nil
}

func (r *Reconciler) setReady(p *pass, s metav1.ConditionStatus, reason v1alpha1.Reason, msg string) {
	controllerkit.SetCondition(&p.s.Status.Conditions, p.s.Generation, p.now, v1alpha1.ConditionReady, s, reason, controllerkit.ShortMessage(msg, nil))
	p.s.Status.ObservedGeneration = p.s.Generation
}

// writeStatus is the one status write of a reconcile: controllerkit's
// PatchStatus (an optimistic lock), so a stale copy never forgets a handled
// tick or token.
// Events are recorded even when the write fails: they tell what was done
// (a created or deleted run stays so); a retried decision may repeat one.
func (r *Reconciler) writeStatus(ctx context.Context, orig *v1alpha1.MessageTraceSchedule, p *pass) error {
	if r.Recorder != nil {
		for _, e := range p.outcomes {
			r.Recorder.Eventf(p.s, nil, e.typ, e.reason, "Schedule", "%s", e.msg)
		}
	}
	for _, e := range p.outcomes {
		scheduleActions.WithLabelValues(e.reason).Inc()
	}
	if equality.Semantic.DeepEqual(orig.Status, p.s.Status) {
		return nil
	}
	return controllerkit.PatchStatus(ctx, r.Client, orig, p.s)
}
