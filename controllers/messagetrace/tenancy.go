package messagetrace

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// Tenancy scopes what a namespace's MessageTraces see to the addresses
// TracePolicies grant it. The manager always sets it (scoping is on unless
// --tenancy=disabled); a Reconciler without one (nil) is unrestricted.
type Tenancy struct {
	// OperatorNamespace is unrestricted (the operator's own namespace; "" for none).
	OperatorNamespace string
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=tracepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// Scope is what a namespace may see, as a pure decision: nil is unrestricted
// (no tenancy, or the operator's namespace), a non-empty list the granted
// patterns, and denied is true when no policy grants the namespace anything.
func (t *Tenancy) Scope(namespace string, nsLabels map[string]string, policies []v1alpha1.TracePolicy) (scope []string, denied bool) {
	if t == nil || (t.OperatorNamespace != "" && namespace == t.OperatorNamespace) {
		return nil, false
	}
	patterns, _ := v1alpha1.Grants(policies, namespace, nsLabels)
	return patterns, len(patterns) == 0
}

// scope restricts the trace's query to what its namespace is granted, in the
// store query itself; a namespace granted nothing fails AccessDenied before
// the store is queried.
func (r *Reconciler) scope(ctx context.Context, t *run) (*ctrl.Result, error) {
	if r.Tenancy == nil || (r.Tenancy.OperatorNamespace != "" && t.mt.Namespace == r.Tenancy.OperatorNamespace) {
		return nil, nil
	}
	var list v1alpha1.TracePolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list TracePolicies: %w", err)
	}
	var nsLabels map[string]string
	if needsLabels(list.Items) {
		ns := &corev1.Namespace{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Name: t.mt.Namespace}, ns); err != nil {
			return nil, fmt.Errorf("read namespace %s for its TracePolicy grants: %w", t.mt.Namespace, err)
		}
		nsLabels = ns.Labels
	}
	scope, denied := r.Tenancy.Scope(t.mt.Namespace, nsLabels, list.Items)
	if denied {
		r.fail(t, v1alpha1.ReasonAccessDenied, v1alpha1.AccessDeniedMessage(t.mt.Namespace))
		return &ctrl.Result{}, nil
	}
	t.query.Scope = scope
	return nil, nil
}

// needsLabels reports whether a policy selects namespaces by label (only
// then is the namespace read).
func needsLabels(policies []v1alpha1.TracePolicy) bool {
	for i := range policies {
		if policies[i].Spec.NamespaceSelector != nil {
			return true
		}
	}
	return false
}
