package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The Grafana dashboard ships as a ConfigMap for Grafana's sidecar when
// asked for, its JSON parses, and every metric it queries is one the
// operator exports (a renamed metric would leave a panel empty).
func TestGrafanaDashboard(t *testing.T) {
	objs, _ := objects(t, "mailtrace", "metrics: {grafanaDashboard: {enabled: true}}")
	cm := find(t, objs, "ConfigMap", fullname()+"-dashboard")
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v, want grafana_dashboard=1", cm.GetLabels())
	}
	src, _, _ := unstructured.NestedString(cm.Object, "data", "mailtrace.json")
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(src), &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	exported := ""
	for _, f := range []string{"internal/store/storemetrics/storemetrics.go", "controllers/messagetrace/metrics.go"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		exported += string(b)
	}
	metric := regexp.MustCompile(`mailtrace_[a-z_]+`)
	queried := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				queried++
				name := strings.TrimSuffix(m, "_bucket")
				if !strings.Contains(exported, `"`+name+`"`) {
					t.Errorf("panel %q queries %s, which nothing exports", p.Title, m)
				}
			}
		}
	}
	if queried == 0 {
		t.Error("the dashboard queries no mailtrace metric")
	}
	objs, _ = objects(t, "mailtrace", "")
	if lookup(objs, "ConfigMap", fullname()+"-dashboard") != nil {
		t.Error("the dashboard ConfigMap is rendered by default")
	}
}

// A PostgreSQL replica reaches the manager (its DSN from a Secret, never
// an argument), not the ingester, which writes.
func TestPostgresReplica(t *testing.T) {
	objs, _ := objects(t, "mailtrace", `
store:
  type: postgres
  postgres: {existingSecret: mailtrace-db, dsnKey: url, replica: {existingSecret: mailtrace-db-ro, maxLag: 45s}}
ingest:
  enabled: true
  acceptedDomains: [example.com]
  syslogTCP: {enabled: true}
  insecureNoAuth: true
`)
	mc := container(t, find(t, objs, "Deployment", fullname()+"-manager"))
	mustArgs(t, mc, "--store-replica-max-lag=45s")
	if a := argWithPrefix(mc, "--store-replica="); len(a) != 0 {
		t.Errorf("manager has %q; the replica's DSN must come from the Secret", a)
	}
	found := false
	for _, e := range mc.Env {
		if e.Name == "MAILTRACE_STORE_REPLICA" {
			found = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == "mailtrace-db-ro" && e.ValueFrom.SecretKeyRef.Key == "dsn"
		}
	}
	if !found {
		t.Errorf("manager env %v: want MAILTRACE_STORE_REPLICA from secret mailtrace-db-ro/dsn", mc.Env)
	}
	ing := find(t, objs, "StatefulSet", fullname()+"-ingester")
	for _, c := range podSpec(t, ing).Containers {
		for _, e := range c.Env {
			if e.Name == "MAILTRACE_STORE_REPLICA" {
				t.Errorf("the ingester (%s) was given the replica; it writes to the primary", c.Name)
			}
		}
	}
	// No replica: neither.
	objs, _ = objects(t, "mailtrace", "store: {type: postgres, postgres: {existingSecret: mailtrace-db}}")
	mc = container(t, find(t, objs, "Deployment", fullname()+"-manager"))
	if a := argWithPrefix(mc, "--store-replica"); len(a) != 0 {
		t.Errorf("manager without a replica has %q", a)
	}
}
