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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/store"
)

// ControllerName names the controller, its Events' reporting controller and its logger.
const ControllerName = "messagetrace"

// Defaults of Options.
const (
	DefaultQueryTimeout            = 30 * time.Second
	DefaultStatusRangeLimit        = 10 * 24 * time.Hour
	DefaultMaxStatusBytes          = 256 << 10
	DefaultMaxConcurrentReconciles = 2
	DefaultRetryBackoff            = 5 * time.Second
	DefaultMaxRetryBackoff         = 5 * time.Minute
)

// Options tune the reconciler. Zero values take the defaults above.
type Options struct {
	// QueryTimeout bounds one run against the store (count and rows).
	QueryTimeout time.Duration
	// StatusRangeLimit is the longest range answered in status; longer ranges need a report.
	StatusRangeLimit time.Duration
	// MaxStatusBytes is the byte budget of the rows in status (their JSON).
	MaxStatusBytes int
	// MaxConcurrentReconciles is how many traces run at once.
	MaxConcurrentReconciles int
	// RetryBackoff is the wait after the first failure to reach the store; it doubles per failure.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the wait between retries.
	MaxRetryBackoff time.Duration
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueryTimeout, DefaultQueryTimeout)
	def(&o.StatusRangeLimit, DefaultStatusRangeLimit)
	def(&o.RetryBackoff, DefaultRetryBackoff)
	def(&o.MaxRetryBackoff, DefaultMaxRetryBackoff)
	if o.MaxStatusBytes <= 0 {
		o.MaxStatusBytes = DefaultMaxStatusBytes
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	return o
}

// Reconciler runs MessageTraces. Client, Scheme, Recorder and Clock default
// (in SetupWithManager) to the manager's client, scheme, an events.k8s.io
// recorder and the real clock; Store is required.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Store    store.Store
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Options  Options
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces,verbs=get;list;watch
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// SetupWithManager registers the reconciler with the manager. Only creation
// (and spec changes, which the API refuses) start a reconcile: the
// controller's own status writes do not, so retries follow the backoff.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Store == nil {
		return errors.New("messagetrace: Reconciler.Store is required")
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(ControllerName)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.MessageTrace{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
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
	query store.Query
}

type phase func(ctx context.Context, t *run) (*ctrl.Result, error)

// Reconcile runs one MessageTrace, once: a finished trace is left alone, and
// the status is written once, at the end.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	mt := &v1alpha1.MessageTrace{}
	if err := r.Client.Get(ctx, req.NamespacedName, mt); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if mt.IsFinished() {
		return ctrl.Result{}, nil
	}
	orig := mt.DeepCopy()
	defer func() {
		if perr := r.writeStatus(ctx, orig, mt); perr != nil {
			if apierrors.IsConflict(perr) { // our cached copy was stale: read it again
				res, err = ctrl.Result{RequeueAfter: time.Second}, nil
				return
			}
			res, err = ctrl.Result{}, errors.Join(err, perr)
		}
	}()
	t := &run{mt: mt, now: r.now(), opts: r.Options.withDefaults()}
	for _, p := range []phase{r.resolve, r.validate, r.checkRange, r.runQuery} {
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
func (r *Reconciler) resolve(_ context.Context, t *run) (*ctrl.Result, error) {
	t.start, t.end = t.mt.Spec.ResolveTimeRange(t.mt.CreationTimestamp.Time)
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
		r.fail(t, v1alpha1.ReasonInvalidSpec, ShortMessage("the spec cannot run", err))
		return &ctrl.Result{}, nil
	}
	t.query = q
	return nil, nil
}

// checkRange stops ranges too long for status: they need a report, which
// this version cannot write. Not a failure and not silent, and not retried.
func (r *Reconciler) checkRange(_ context.Context, t *run) (*ctrl.Result, error) {
	if d := t.end.Sub(t.start); d > t.opts.StatusRangeLimit {
		limit := FormatDuration(t.opts.StatusRangeLimit)
		r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonReportRequired, fmt.Sprintf(
			"the range is %s; ranges longer than %s are answered by a CSV report, which comes with a later version of mailtrace. "+
				"To get the answer in status now, create a trace of at most %s", FormatDuration(d), limit, limit))
		t.mt.Status.ObservedGeneration = t.mt.Generation
		return &ctrl.Result{}, nil
	}
	return nil, nil
}

// runQuery counts and fetches the newest rows under a deadline.
func (r *Reconciler) runQuery(ctx context.Context, t *run) (*ctrl.Result, error) {
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
	page, err := r.Store.Trace(qctx, t.query, "", t.mt.Spec.Limit())
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
	st.CompletionTime = ptrTime(t.now)
	st.ObservedGeneration = t.mt.Generation
	r.setCondition(t, v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, v1alpha1.ReasonStoreAvailable, "the trace store answered")
	msg := fmt.Sprintf("%d matches, all shown", st.TotalMatches)
	if st.Truncated {
		msg = fmt.Sprintf("%d matches, the newest %d shown (status is bounded)", st.TotalMatches, len(rows))
	}
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, msg)
	r.setCondition(t, v1alpha1.ConditionFailed, metav1.ConditionFalse, v1alpha1.ReasonCompleted, "the trace has its answer")
	return &ctrl.Result{}, nil
}

// storeFailed records a store error: terminal when the store refused the
// query, otherwise retried with backoff.
func (r *Reconciler) storeFailed(ctx context.Context, t *run, err error) (*ctrl.Result, error) {
	storeErrors.Inc()
	if IsTerminal(err) {
		r.fail(t, v1alpha1.ReasonQueryFailed, ShortMessage("the trace store refused the query", err))
		return &ctrl.Result{}, nil
	}
	st := &t.mt.Status
	st.Attempts++
	wait := Backoff(st.Attempts, t.opts.RetryBackoff, t.opts.MaxRetryBackoff)
	log.FromContext(ctx).Info("trace store unavailable, retrying", "attempt", st.Attempts, "retryIn", wait, "error", err.Error())
	r.setCondition(t, v1alpha1.ConditionStoreAvailable, metav1.ConditionFalse, v1alpha1.ReasonStoreUnavailable,
		ShortMessage("the trace store did not answer", err))
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
	meta.SetStatusCondition(&t.mt.Status.Conditions, metav1.Condition{
		Type:               string(ct),
		Status:             s,
		Reason:             string(reason),
		Message:            msg,
		ObservedGeneration: t.mt.Generation,
		LastTransitionTime: metav1.NewTime(t.now),
	})
}

// writeStatus is the one status write of a reconcile: a merge patch from the
// object as read, refused if the object changed since (a stale cache must
// not re-run a finished trace). Events and metrics follow a successful write.
func (r *Reconciler) writeStatus(ctx context.Context, orig, mt *v1alpha1.MessageTrace) error {
	mt.Status.Phase = PhaseOf(mt.Status.Conditions)
	if equality.Semantic.DeepEqual(orig.Status, mt.Status) {
		return nil
	}
	patch := client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Status().Patch(ctx, mt, patch); err != nil {
		return err
	}
	if o := Outcome(&orig.Status, &mt.Status); o != "" {
		tracesTotal.WithLabelValues(o).Inc()
	}
	if r.Recorder != nil {
		for _, e := range Transitions(&orig.Status, &mt.Status) {
			r.Recorder.Eventf(mt, nil, e.Type, e.Reason, "Trace", "%s", e.Message)
		}
	}
	return nil
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}
