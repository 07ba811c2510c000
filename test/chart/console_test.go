package chart_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/internal/console"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

const consoleValues = `
console:
  enabled: true
  defaultNamespace: team-a
ingest:
  acceptedDomains: [example.com, example.org]
`

// TestConsoleOffByDefault: without console.enabled nothing of it renders.
func TestConsoleOffByDefault(t *testing.T) {
	objs, _ := objects(t, "mailtrace", "")
	for _, o := range objs {
		if strings.HasSuffix(o.GetName(), "-console") {
			t.Errorf("%s %s rendered with the console off", o.GetKind(), o.GetName())
		}
	}
}

// TestConsoleActsOnlyWithTheUsersToken: the console's pod has no token of
// its own (its ServiceAccount neither mounts one nor is bound to any role),
// reaches the API server with the cluster's CA only, runs as the other
// pods do, and its args are flags `mailtrace console` parses.
func TestConsoleActsOnlyWithTheUsersToken(t *testing.T) {
	objs, _ := objects(t, "mailtrace", consoleValues)
	name := fullname() + "-console"
	dep := find(t, objs, "Deployment", name)
	sa := find(t, objs, "ServiceAccount", name)
	if v, _, _ := unstructured.NestedBool(sa.Object, "automountServiceAccountToken"); v {
		t.Error("the console's ServiceAccount mounts a token")
	}
	ps := podSpec(t, dep)
	if ps.ServiceAccountName != name || ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("pod: serviceAccountName %q, automount %v; want %s and false", ps.ServiceAccountName, ps.AutomountServiceAccountToken, name)
	}
	for _, o := range objs {
		if o.GetKind() != "RoleBinding" && o.GetKind() != "ClusterRoleBinding" {
			continue
		}
		subs, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		for _, s := range subs {
			if m, ok := s.(map[string]any); ok && m["name"] == name {
				t.Errorf("%s %s binds the console's ServiceAccount: it must act with each user's token only", o.GetKind(), o.GetName())
			}
		}
	}
	var caVolume bool
	for _, v := range ps.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == "kube-root-ca.crt" {
			caVolume = true
		}
		if v.Secret != nil || v.Projected != nil {
			t.Errorf("volume %s mounts a Secret or a projected token", v.Name)
		}
	}
	if !caVolume {
		t.Error("no kube-root-ca.crt volume: the console cannot check the API server's certificate")
	}
	c := container(t, dep)
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.Capabilities == nil || !reflect.DeepEqual(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v", c.SecurityContext)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	if !slices.Contains(c.Args, "--namespace=team-a") || !slices.Contains(c.Args, "--accepted-domain=example.com") || !slices.Contains(c.Args, "--accepted-domain=example.org") {
		t.Errorf("args %q: want the default namespace and ingest's accepted domains", c.Args)
	}
	cmd := console.NewServeCommand()
	if len(c.Args) == 0 || c.Args[0] != cmd.Name() {
		t.Fatalf("args %q do not start with %q", c.Args, cmd.Name())
	}
	if err := cmd.ParseFlags(c.Args[1:]); err != nil || len(cmd.Flags().Args()) != 0 {
		t.Errorf("mailtrace console refuses its args %q: %v (stray %q)", c.Args, err, cmd.Flags().Args())
	}
	svc := find(t, objs, "Service", name)
	if b, _ := yaml.Marshal(svc.Object); !strings.Contains(string(b), "targetPort: http") {
		t.Errorf("Service:\n%s", b)
	}
	if err := console.NewServeCommand().ParseFlags([]string{"--no-such-flag"}); err == nil {
		t.Error("a control: an unknown flag parsed")
	}
}

// TestConsoleManifestsValidate: the console's objects pass the API server's
// strict validation (a dry run).
func TestConsoleManifestsValidate(t *testing.T) {
	env := kubetest.Get(t)
	ctx := context.Background()
	ns := fmt.Sprintf("chart-console-%d", time.Now().UnixNano()%100000)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	objs, _ := objects(t, ns, consoleValues)
	for _, o := range objs {
		if !strings.HasSuffix(o.GetName(), "-console") {
			continue
		}
		if err := env.Client.Create(ctx, o, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("%s %s refused: %v", o.GetKind(), o.GetName(), err)
		}
	}
}
