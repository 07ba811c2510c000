package messagetrace

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// deletionStarted passes the update that sets a deletionTimestamp.
type deletionStarted struct{ predicate.Funcs }

func (deletionStarted) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp() == nil && e.ObjectNew.GetDeletionTimestamp() != nil
}

// tracesOfStore maps a ReportStore change (created, checked, fixed) to the
// unfinished traces of its namespace that use it.
func (r *Reconciler) tracesOfStore(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.MessageTraceList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		mt := &list.Items[i]
		if mt.Spec.Report != nil && mt.Spec.Report.StoreName == o.GetName() && !mt.IsFinished() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(mt)})
		}
	}
	return out
}
