// Package messagetrace is the MessageTrace controller: it runs each trace
// once against the trace store and writes the answer into the object's status.
package messagetrace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/store"
)

// ControllerName names the controller, its Events' reporting controller and its logger.
const ControllerName = "messagetrace"

// Reconciler runs MessageTraces. Client, APIReader, Scheme, Recorder and
// Clock default (in SetupWithManager) to the manager's client, uncached
// reader, scheme, an events.k8s.io recorder and the real clock; Store is
// required. Reports go to the trace's ReportStore or to DefaultReportStore,
// written by a pool of Options.Workers inside the manager.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Store     store.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Options   Options
	// DefaultReportStore is the operator-wide report store (nil: none).
	DefaultReportStore *DefaultReportStore
	// NewObjectStore opens a ReportStore's object store (objectstore.New when nil).
	NewObjectStore func(objectstore.Config) (objectstore.Store, error)
	// Tenancy scopes each namespace's traces to its TracePolicy grants (nil: unrestricted).
	Tenancy *Tenancy
	// Grants decides which ReportStore endpoints each namespace may reach (nil: unrestricted).
	Grants *grants.Resolver

	pool *Pool
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces/finalizers,verbs=update
// +kubebuilder:rbac:groups=mailtrace.io,resources=reportstores,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces/status,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// SetupWithManager registers the reconciler with the manager. Only creation
// (and spec changes, which the API refuses) start a reconcile: the
// controller's own status writes do not, so retries follow the backoff.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Store == nil {
		return errors.New("messagetrace: Reconciler.Store is required")
	}
	controllerkit.Default(&r.Client, mgr.GetClient())
	controllerkit.Default(&r.Scheme, mgr.GetScheme())
	controllerkit.Default[events.EventRecorder](&r.Recorder, mgr.GetEventRecorder(ControllerName))
	controllerkit.Default[clock.PassiveClock](&r.Clock, clock.RealClock{})
	controllerkit.Default(&r.APIReader, mgr.GetAPIReader())
	// Finished exports wake their trace through this channel.
	finished := make(chan event.GenericEvent, 64)
	r.pool = &Pool{Workers: r.Options.withDefaults().Workers, Notify: func(k types.NamespacedName) {
		ev := event.GenericEvent{Object: &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}}
		select {
		case finished <- ev:
		default: // never block a worker: the trace's progress requeue picks the outcome up
		}
	}}
	if err := mgr.Add(r.pool); err != nil {
		return err
	}
	if err := r.setupAutosave(mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.MessageTrace{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, deletionStarted{}))).
		Watches(&v1alpha1.ReportStore{}, handler.EnqueueRequestsFromMapFunc(r.tracesOfStore)).
		WatchesRawSource(source.Channel(finished, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.withDefaults().MaxConcurrentReconciles}).
		Complete(r)
}

// run is what the phases of one reconcile share.
type run struct {
	mt    *v1alpha1.MessageTrace
	now   time.Time
	opts  Options
	start time.Time
	end   time.Time
	query mailflow.Query
	// cursor is where spec.continue's page starts (empty: the first page).
	cursor mailflow.Cursor
	// report: the trace makes a CSV report; skipQuery: its answer comes
	// from the report alone (a long range, or an export already started).
	report, skipQuery bool
	// events are emitted and afterWrite run once status is written.
	events     []Event
	afterWrite []func()
}

type phase func(ctx context.Context, t *run) (*ctrl.Result, error)

// Reconcile runs one MessageTrace, once: a finished trace is left alone, and
// the status is written once, at the end.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	mt := &v1alpha1.MessageTrace{}
	if err := r.Client.Get(ctx, req.NamespacedName, mt); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if mt.DeletionTimestamp != nil {
		return r.finalize(ctx, mt)
	}
	if mt.IsFinished() {
		return r.expire(ctx, mt)
	}
	if err := r.ensureFinalizer(ctx, mt); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, err
	}
	orig := mt.DeepCopy()
	t := &run{mt: mt, now: r.now(), opts: r.Options.withDefaults()}
	defer func() {
		// A conflict (our cached copy was stale) requeues: the trace is read again.
		werr := r.writeStatus(ctx, orig, mt, t.events)
		if res, err = controllerkit.AfterWrite(res, err, werr); werr == nil {
			for _, f := range t.afterWrite {
				f()
			}
		}
	}()
	for _, p := range []phase{r.resolve, r.validate, r.scope, r.details, r.checkRange, r.runQuery, r.export} {
		if res, err := p(ctx, t); res != nil || err != nil {
			if res == nil {
				res = &ctrl.Result{}
			}
			return *res, err
		}
	}
	return ctrl.Result{}, nil
}

func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now().UTC()
	}
	return r.Clock.Now().UTC()
}

// resolve turns the spec's time filters into the absolute range, anchored at
// the object's creation so that the answer does not depend on when it runs.
// A follow-up page (spec.continue) covers the earlier trace's range, which
// its token carries.
func (r *Reconciler) resolve(_ context.Context, t *run) (*ctrl.Result, error) {
	t.start, t.end = t.mt.Spec.ResolveTimeRange(t.mt.CreationTimestamp.Time)
	if tok := t.mt.Spec.Continue; tok != "" && t.mt.Spec.Details == nil {
		start, end, cursor, err := DecodeContinue(&t.mt.Spec, tok)
		if err != nil {
			r.fail(t, v1alpha1.ReasonInvalidSpec, controllerkit.ShortMessage("the spec cannot run", err))
			return &ctrl.Result{}, nil
		}
		t.start, t.end, t.cursor = start, end, cursor
	}
	t.mt.Status.TimeRange = &v1alpha1.TimeRange{
		Start:    metav1.NewTime(t.start),
		End:      metav1.NewTime(t.end),
		Duration: FormatDuration(t.end.Sub(t.start)),
	}
	return nil, nil
}

// validate checks what the CRD's rules cannot: time and the store's own rules.
func (r *Reconciler) validate(_ context.Context, t *run) (*ctrl.Result, error) {
	if t.start.After(t.now) {
		r.fail(t, v1alpha1.ReasonStartInFuture, fmt.Sprintf(
			"the time range starts at %s, in the future: nothing can match; create a trace with an earlier startTime",
			t.start.Format(time.RFC3339)))
		return &ctrl.Result{}, nil
	}
	q, err := BuildQuery(&t.mt.Spec, t.start, t.end)
	if err != nil {
		r.fail(t, v1alpha1.ReasonInvalidSpec, controllerkit.ShortMessage("the spec cannot run", err))
		return &ctrl.Result{}, nil
	}
	t.query = q
	return nil, nil
}

// checkRange decides whether the trace makes a report before anything is
// queried: ranges longer than the status threshold are answered by the
// report alone, as is a trace whose export has already started.
// A follow-up page (spec.continue) is answered in status: it makes a
// report only when report.always asks.
func (r *Reconciler) checkRange(_ context.Context, t *run) (*ctrl.Result, error) {
	if t.cursor != "" {
		t.report = (t.mt.Spec.Report != nil && t.mt.Spec.Report.Always) || t.mt.Status.Report != nil
		t.skipQuery = t.mt.Status.Report != nil
		return nil, nil
	}
	long := t.end.Sub(t.start) > t.opts.StatusRangeLimit
	t.report = ReportUpFront(&t.mt.Spec, t.end.Sub(t.start), t.opts.StatusRangeLimit) || t.mt.Status.Report != nil
	t.skipQuery = long || t.mt.Status.Report != nil
	return nil, nil
}

// runQuery counts and fetches the newest rows under a deadline.
func (r *Reconciler) runQuery(ctx context.Context, t *run) (*ctrl.Result, error) {
	if t.skipQuery {
		return nil, nil
	}
	st := &t.mt.Status
	if st.StartTime == nil {
		st.StartTime = ptrTime(t.now)
	}
	qctx, cancel := context.WithTimeout(ctx, t.opts.QueryTimeout)
	defer cancel()
	began := time.Now()
	counts, err := r.Store.Count(qctx, t.query)
	if err != nil {
		return r.storeFailed(ctx, t, err)
	}
	page, err := r.Store.Trace(qctx, t.query, t.cursor, t.mt.Spec.Limit())
	if err != nil {
		return r.storeFailed(ctx, t, err)
	}
	traceDuration.Observe(time.Since(began).Seconds())
	traceRows.Observe(float64(counts.Total))

	rows := make([]v1alpha1.TraceRow, 0, len(page.Rows))
	for _, row := range page.Rows {
		rows = append(rows, ToRow(row))
	}
	rows = FitRows(rows, t.mt.Spec.Limit(), t.opts.MaxStatusBytes)
	st.Rows = rows
	st.ReturnedRows = int32(len(rows))
	st.TotalMatches = max(counts.Total, int64(len(rows)))
	st.Truncated = st.TotalMatches > int64(len(rows))
	st.Counts = CountsOf(counts)
	if next := NextCursor(page, len(rows)); next != "" {
		st.Continue = EncodeContinue(&t.mt.Spec, t.start, t.end, next)
	}
	if t.report || (st.Truncated && t.cursor == "" && r.hasReportStore(t.mt)) {
		// The whole answer goes to a report; status keeps the newest rows.
		t.report = true
		r.storeAnswered(qctx, t)
		return nil, nil
	}
	st.CompletionTime = ptrTime(t.now)
	st.ObservedGeneration = t.mt.Generation
	r.storeAnswered(qctx, t)
	msg := fmt.Sprintf("%d matches, all shown", st.TotalMatches)
	switch {
	case t.cursor != "" && st.Continue != "":
		msg = fmt.Sprintf("%d matches; this page holds %d rows and more follow (status.continue)", st.TotalMatches, len(rows))
	case t.cursor != "":
		msg = fmt.Sprintf("%d matches; this page holds the last %d rows", st.TotalMatches, len(rows))
	case st.Truncated:
		msg = fmt.Sprintf("%d matches, the newest %d shown (status is bounded; with a report store, spec.report or the operator's default, the whole answer would go to a CSV report)", st.TotalMatches, len(rows))
	}
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, msg)
	r.setCondition(t, v1alpha1.ConditionFailed, metav1.ConditionFalse, v1alpha1.ReasonCompleted, "the trace has its answer")
	return ttlResult(t), nil
}

// storeFailed records a store error: terminal when the store refused the
// query, otherwise retried with backoff.
func (r *Reconciler) storeFailed(ctx context.Context, t *run, err error) (*ctrl.Result, error) {
	storeErrors.Inc()
	if IsTerminal(err) {
		r.fail(t, v1alpha1.ReasonQueryFailed, controllerkit.ShortMessage("the trace store refused the query", err))
		return &ctrl.Result{}, nil
	}
	st := &t.mt.Status
	st.Attempts++
	wait := controllerkit.Backoff(st.Attempts, t.opts.RetryBackoff, t.opts.MaxRetryBackoff)
	log.FromContext(ctx).Info("trace store unavailable, retrying", "attempt", st.Attempts, "retryIn", wait, "error", err.Error())
	r.setCondition(t, v1alpha1.ConditionStoreAvailable, metav1.ConditionFalse, v1alpha1.ReasonStoreUnavailable,
		controllerkit.ShortMessage("the trace store did not answer", err))
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonStoreUnavailable,
		fmt.Sprintf("waiting for the trace store: attempt %d failed, next in %s", st.Attempts, wait))
	return &ctrl.Result{RequeueAfter: wait}, nil
}

// fail ends the trace for good.
func (r *Reconciler) fail(t *run, reason v1alpha1.Reason, msg string) {
	t.mt.Status.CompletionTime = ptrTime(t.now)
	t.mt.Status.ObservedGeneration = t.mt.Generation
	r.setCondition(t, v1alpha1.ConditionFailed, metav1.ConditionTrue, reason, msg)
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, reason, msg)
}

func (r *Reconciler) setCondition(t *run, ct v1alpha1.ConditionType, s metav1.ConditionStatus, reason v1alpha1.Reason, msg string) {
	controllerkit.SetCondition(&t.mt.Status.Conditions, t.mt.Generation, t.now, ct, s, reason, msg)
}

// writeStatus is the one status write of a reconcile: controllerkit's
// PatchStatus, refused if the object changed since it was read (a stale
// cache must not re-run a finished trace). Events and metrics follow a
// successful write.
func (r *Reconciler) writeStatus(ctx context.Context, orig, mt *v1alpha1.MessageTrace, extra []Event) error {
	mt.Status.Phase = PhaseOf(mt.Status.Conditions)
	if equality.Semantic.DeepEqual(orig.Status, mt.Status) {
		return nil
	}
	if err := controllerkit.PatchStatus(ctx, r.Client, orig, mt); err != nil {
		return err
	}
	if o := Outcome(&orig.Status, &mt.Status); o != "" {
		tracesTotal.WithLabelValues(o).Inc()
	}
	if r.Recorder != nil {
		for _, e := range append(Transitions(&orig.Status, &mt.Status), extra...) {
			r.Recorder.Eventf(mt, nil, e.Type, e.Reason, "Trace", "%s", e.Message)
		}
	}
	return nil
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}
