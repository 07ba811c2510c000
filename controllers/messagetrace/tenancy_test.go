package messagetrace

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

func TestTenancyScope(t *testing.T) {
	pol := func(name string, nss []string, sel *metav1.LabelSelector, addrs ...v1alpha1.AddressPattern) v1alpha1.TracePolicy {
		return v1alpha1.TracePolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.TracePolicySpec{Namespaces: nss, NamespaceSelector: sel, Addresses: addrs}}
	}
	teamSel := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	policies := []v1alpha1.TracePolicy{
		pol("a", []string{"team-a"}, nil, "*@a.example"),
		pol("a-by-label", nil, teamSel, "*@a.example", "postmaster@*"),
		pol("c", []string{"team-c", "team-a"}, nil, "*@c.example"),
		pol("bad-selector", nil, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}, "*"),
	}
	ten := &Tenancy{OperatorNamespace: "mailtrace-system"}
	for _, c := range []struct {
		name, ns   string
		labels     map[string]string
		ten        *Tenancy
		want       []string
		wantDenied bool
	}{
		{"union of the policies naming the namespace", "team-a", nil, ten, []string{"*@a.example", "*@c.example"}, false},
		{"by label, deduplicated", "team-a", map[string]string{"team": "a"}, ten, []string{"*@a.example", "postmaster@*", "*@c.example"}, false},
		{"label only", "other", map[string]string{"team": "a"}, ten, []string{"*@a.example", "postmaster@*"}, false},
		{"no grant: denied", "team-b", map[string]string{"team": "b"}, ten, []string{}, true},
		{"the operator's namespace is unrestricted", "mailtrace-system", nil, ten, nil, false},
		{"no operator namespace configured", "mailtrace-system", nil, &Tenancy{}, []string{}, true},
		{"tenancy disabled", "team-b", nil, nil, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, denied := c.ten.Scope(c.ns, c.labels, policies)
			if denied != c.wantDenied || !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
				t.Errorf("Scope(%s, %v) = %q (nil %v), denied %v; want %q (nil %v), denied %v",
					c.ns, c.labels, got, got == nil, denied, c.want, c.want == nil, c.wantDenied)
			}
		})
	}
}
