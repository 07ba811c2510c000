package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Tenancy is on by default with the release namespace unrestricted; the
// values can grant namespaces addresses (TracePolicies) and, explicitly,
// switch scoping off.
func TestTenancyValues(t *testing.T) {
	objs, _ := objects(t, "mailtrace", "")
	c := container(t, find(t, objs, "Deployment", fullname()+"-manager"))
	mustArgs(t, c, "--tenancy=enabled", "--operator-namespace=mailtrace")
	if n := len(kinds(objs, "TracePolicy")); n != 0 {
		t.Errorf("%d TracePolicies rendered by default, want none", n)
	}

	objs, _ = objects(t, "mailtrace", `
tenancy:
  grants:
  - {name: team-a, namespaces: [team-a], addresses: ["*@team-a.example.com"]}
  - {name: by-label, namespaceSelector: {matchLabels: {mail-team: b}}, addresses: ["*@b.example.com", "postmaster@*"]}
`)
	a := find(t, objs, "TracePolicy", "team-a")
	if nss, _, _ := unstructured.NestedStringSlice(a.Object, "spec", "namespaces"); len(nss) != 1 || nss[0] != "team-a" {
		t.Errorf("team-a namespaces %q", nss)
	}
	b := find(t, objs, "TracePolicy", "by-label")
	if l, _, _ := unstructured.NestedString(b.Object, "spec", "namespaceSelector", "matchLabels", "mail-team"); l != "b" {
		t.Errorf("by-label selector %v", b.Object["spec"])
	}
	if addrs, _, _ := unstructured.NestedStringSlice(b.Object, "spec", "addresses"); len(addrs) != 2 {
		t.Errorf("by-label addresses %q", addrs)
	}

	objs, _ = objects(t, "mailtrace", "tenancy: {enabled: false}")
	mustArgs(t, container(t, find(t, objs, "Deployment", fullname()+"-manager")), "--tenancy=disabled")

	for _, bad := range []string{
		"tenancy: {enabled: maybe}",
		"tenancy: {grants: [{name: x, addresses: ['*@x.example']}]}", // selects no namespace
		"tenancy: {grants: [{name: x, namespaces: [x], addresses: []}]}",
	} {
		if _, err := render(t, "mailtrace", bad); err == nil {
			t.Errorf("values %q rendered, want them refused", bad)
		}
	}
}

// The chart's aggregated roles are config/rbac/aggregate.yaml, copied by make manifests.
func TestAggregateRolesCopyMatchesConfig(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", "aggregate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir(t), "rbac-src", "aggregate.yaml"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("charts/mailtrace/rbac-src/aggregate.yaml differs from config/rbac/aggregate.yaml (%v): run make manifests", err)
	}
}
