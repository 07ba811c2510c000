package crd

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func newPolicy(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "TracePolicy",
		"metadata":   map[string]any{"name": name},
		"spec":       spec,
	}}
}

// TracePolicy validation: it must select namespaces and grant address
// patterns of the MessageTrace shape; a MessageTrace's storeName is a name
// of its own namespace, never namespace/name.
func TestTracePolicyAndStoreNameValidation(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	for i, tc := range []struct {
		name string
		spec map[string]any
		want string // "" accepted, else a part of the message
	}{
		{"by name", map[string]any{"namespaces": []any{"team-a"}, "addresses": []any{"*@team-a.example.com"}}, ""},
		{"by selector", map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"team": "a"}}, "addresses": []any{"*@*.a.example", "x@*"}}, ""},
		{"every namespace", map[string]any{"namespaceSelector": map[string]any{}, "addresses": []any{"*"}}, ""},
		{"selects nothing", map[string]any{"addresses": []any{"*@a.example"}}, "must select namespaces"},
		{"empty namespace list", map[string]any{"namespaces": []any{}, "addresses": []any{"*@a.example"}}, "must select namespaces"},
		{"no addresses", map[string]any{"namespaces": []any{"team-a"}, "addresses": []any{}}, "spec.addresses"},
		{"not an address", map[string]any{"namespaces": []any{"team-a"}, "addresses": []any{"team-a.example.com"}}, "must look like local@domain"},
		{"bad namespace name", map[string]any{"namespaces": []any{"Team_A"}, "addresses": []any{"*@a.example"}}, "spec.namespaces"},
		{"grants nothing", map[string]any{"namespaces": []any{"team-a"}}, "must grant something"},
		{"destinations only", map[string]any{"namespaces": []any{"team-a"}, "destinations": []any{
			"minio.storage.svc.cluster.local", "*.hooks.internal.example", "10.20.0.0/16", "fd00::/8", "192.168.1.7", "::1"}}, ""},
		{"email recipients only", map[string]any{"namespaces": []any{"team-a"}, "emailRecipients": []any{"oncall@example.com", "*@ops.example.com"}}, ""},
		{"destination is a URL", map[string]any{"namespaces": []any{"team-a"}, "destinations": []any{"https://hooks.example.com/x"}}, "a destination is a host name"},
		{"destination with a port", map[string]any{"namespaces": []any{"team-a"}, "destinations": []any{"minio.svc:9000"}}, "a destination is a host name"},
		{"destination wildcard inside", map[string]any{"namespaces": []any{"team-a"}, "destinations": []any{"a.*.example"}}, "a destination is a host name"},
		{"recipient not an address", map[string]any{"namespaces": []any{"team-a"}, "emailRecipients": []any{"oncall"}}, "must look like local@domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := newPolicy(fmt.Sprintf("tp-%s-%d", ns, i), tc.spec)
			err := env.Client.Create(ctx(t), obj)
			if err == nil {
				t.Cleanup(func() { _ = env.Client.Delete(ctx(t), obj) })
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected a valid TracePolicy: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a rejection mentioning %q", err, tc.want)
			}
		})
	}
	for i, tc := range []struct{ store, want string }{
		{"reports", ""},
		{"reports.team-a", ""},
		{"other-ns/reports", "own namespace"},
		{"Reports", "must be a ReportStore name"},
	} {
		t.Run("storeName "+tc.store, func(t *testing.T) {
			err := env.Client.Create(ctx(t), newTrace(ns, fmt.Sprintf("store-%d", i), map[string]any{"report": map[string]any{"storeName": tc.store}}))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected a valid storeName: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a rejection mentioning %q", err, tc.want)
			}
		})
	}
}
