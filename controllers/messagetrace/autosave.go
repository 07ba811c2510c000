package messagetrace

import (
	"context"
	"sort"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// AutosaveControllerName names the controller that keeps each user's newest
// autosaved queries.
const AutosaveControllerName = "messagetrace-autosave"

// autosaveKeeper deletes a user's autosaved queries beyond the newest
// Keep in a namespace, each time one of them is created (and, at start,
// once per existing one). Who made a trace is its created-by annotation,
// which the API server checked against the requesting user (the
// ValidatingAdmissionPolicy of config/admission): a user cannot make a
// trace count as another's, so pruning one user's never touches another's.
type autosaveKeeper struct {
	client client.Client
	keep   int
}

// setupAutosave registers the keeper beside the trace controller.
func (r *Reconciler) setupAutosave(mgr ctrl.Manager) error {
	k := &autosaveKeeper{client: r.Client, keep: r.Options.withDefaults().AutosaveKeep}
	autosaved := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[v1alpha1.LabelAutosave] == "true" && o.GetAnnotations()[v1alpha1.AnnotationCreatedBy] != ""
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named(AutosaveControllerName).
		For(&v1alpha1.MessageTrace{}, builder.WithPredicates(autosaved, createdOnly{})).
		Complete(k)
}

// createdOnly passes creations: a new autosaved query is what may push an
// older one out (the label and annotation never change afterwards).
type createdOnly struct{ predicate.Funcs }

func (createdOnly) Create(event.CreateEvent) bool   { return true }
func (createdOnly) Update(event.UpdateEvent) bool   { return false }
func (createdOnly) Delete(event.DeleteEvent) bool   { return false }
func (createdOnly) Generic(event.GenericEvent) bool { return false }

// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces,verbs=list;delete

// Reconcile prunes the autosaved queries of the creator of the trace named by req.
func (k *autosaveKeeper) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	mt := &v1alpha1.MessageTrace{}
	if err := k.client.Get(ctx, req.NamespacedName, mt); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !mt.IsAutosaved() {
		return reconcile.Result{}, nil
	}
	var list v1alpha1.MessageTraceList
	if err := k.client.List(ctx, &list, client.InNamespace(mt.Namespace), client.MatchingLabels{v1alpha1.LabelAutosave: "true"}); err != nil {
		return reconcile.Result{}, err
	}
	for _, old := range AutosavedToPrune(list.Items, mt.CreatedBy(), k.keep) {
		uid := old.UID
		err := k.client.Delete(ctx, old, client.Preconditions{UID: &uid}, client.PropagationPolicy("Background"))
		if client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, err
		}
		log.FromContext(ctx).V(1).Info("deleted an autosaved query beyond its user's newest", "trace", old.Name, "keep", k.keep)
	}
	return reconcile.Result{}, nil
}

// AutosavedToPrune returns user's autosaved queries among traces beyond the
// newest keep (by creation, then name), oldest first; others' traces, traces
// not autosaved and traces being deleted are never returned.
func AutosavedToPrune(traces []v1alpha1.MessageTrace, user string, keep int) []*v1alpha1.MessageTrace {
	var mine []*v1alpha1.MessageTrace
	for i := range traces {
		mt := &traces[i]
		if mt.IsAutosavedBy(user) && mt.DeletionTimestamp == nil {
			mine = append(mine, mt)
		}
	}
	if len(mine) <= keep {
		return nil
	}
	sort.SliceStable(mine, func(i, j int) bool {
		a, b := mine[i].CreationTimestamp, mine[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return mine[i].Name < mine[j].Name
	})
	return mine[:len(mine)-max(keep, 0)]
}
