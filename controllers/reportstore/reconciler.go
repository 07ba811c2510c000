// Package reportstore is the ReportStore controller: it checks each store
// (reachable, bucket exists, credentials may write) and shows the answer as
// the Available condition, rechecked periodically.
package reportstore

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/reportstore"
)

// ControllerName names the controller and its Events' reporting controller.
const ControllerName = "reportstore"

// Defaults of Options.
const (
	DefaultCheckInterval = 5 * time.Minute
	DefaultRetryInterval = 30 * time.Second
	DefaultCheckTimeout  = 20 * time.Second
)

// Options tune the reconciler; zero values take the defaults.
type Options struct {
	// CheckInterval is how often an available store is rechecked (and a store
	// that denies access or lacks its bucket: those need someone to act).
	CheckInterval time.Duration
	// RetryInterval is how soon an unreachable store is rechecked.
	RetryInterval time.Duration
	// CheckTimeout bounds one check.
	CheckTimeout time.Duration
}

func (o Options) withDefaults() Options {
	controllerkit.Default(&o.CheckInterval, DefaultCheckInterval)
	controllerkit.Default(&o.RetryInterval, DefaultRetryInterval)
	controllerkit.Default(&o.CheckTimeout, DefaultCheckTimeout)
	return o
}

// Reconciler checks ReportStores. APIReader reads Secrets and ConfigMaps
// uncached (the manager never caches Secrets); it defaults to the manager's.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Options   Options
	// NewObjectStore opens an object store (objectstore.New when nil).
	NewObjectStore func(objectstore.Config) (objectstore.Store, error)
	// Grants decides which endpoints each namespace may reach (the manager
	// always sets it; nil is unrestricted).
	Grants *grants.Resolver
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=reportstores,verbs=get;list;watch
// +kubebuilder:rbac:groups=mailtrace.io,resources=reportstores/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get

// SetupWithManager registers the reconciler. Spec changes start a check;
// status writes do not (rechecks follow RequeueAfter).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	controllerkit.Default(&r.Client, mgr.GetClient())
	controllerkit.Default(&r.APIReader, mgr.GetAPIReader())
	controllerkit.Default[events.EventRecorder](&r.Recorder, mgr.GetEventRecorder(ControllerName))
	controllerkit.Default[clock.PassiveClock](&r.Clock, clock.RealClock{})
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.ReportStore{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// Open builds rs's object store: credentials from its Secret, then the
// adapter (reportstore.Open, the service every controller opens stores with).
func (r *Reconciler) Open(ctx context.Context, rs *v1alpha1.ReportStore) (objectstore.Store, error) {
	return reportstore.Open(ctx, r.APIReader, rs, r.NewObjectStore, r.Grants)
}

// Reconcile checks one ReportStore and writes its Available condition.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	o := r.Options.withDefaults()
	rs := &v1alpha1.ReportStore{}
	if err := r.Client.Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := rs.DeepCopy()
	cctx, cancel := context.WithTimeout(ctx, o.CheckTimeout)
	defer cancel()
	obj, err := r.Open(cctx, rs)
	if err == nil {
		err = obj.Check(cctx)
	}
	if ctx.Err() != nil { // the manager is stopping
		return ctrl.Result{}, nil
	}
	s, reason, msg := Availability(err)
	if err != nil {
		// The whole cause for the operator; the condition says less (a
		// tenant reads it, and must not learn refused from filtered).
		ctrl.LoggerFrom(ctx).Info("ReportStore check failed", "reason", reason, "cause", objectstore.Detail(err))
	}
	now := metav1.NewTime(r.Clock.Now())
	controllerkit.SetCondition(&rs.Status.Conditions, rs.Generation, now.Time, v1alpha1.ConditionAvailable, s, reason, msg)
	rs.Status.ObservedGeneration = rs.Generation
	rs.Status.LastCheckTime = &now
	wait := NextCheck(reason, s == metav1.ConditionTrue, o.CheckInterval, o.RetryInterval)
	if equality.Semantic.DeepEqual(orig.Status.Conditions, rs.Status.Conditions) && orig.Status.ObservedGeneration == rs.Status.ObservedGeneration {
		// Nothing changed but the check time: skip the write, keep etcd quiet.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if err := controllerkit.PatchStatus(ctx, r.Client, orig, rs); err != nil {
		// A conflict: the store is checked again on fresh state.
		return controllerkit.AfterWrite(ctrl.Result{}, nil, err)
	}
	if was := orig.Condition(v1alpha1.ConditionAvailable); was == nil || was.Status != s || was.Reason != string(reason) {
		typ := "Normal"
		if s != metav1.ConditionTrue {
			typ = "Warning"
		}
		r.Recorder.Eventf(rs, nil, typ, string(reason), "Check", "%s", msg)
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}
