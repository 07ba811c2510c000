// Package chart_test renders charts/mailtrace with the Helm SDK for the main
// value combinations, checks what each renders (security contexts, leader
// election, Secret references, the CRDs and RBAC of config/), and applies
// every rendered object with a server-side dry run to the real kube-apiserver
// of envtest, so the API server's own schemas validate them.
package chart_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

const releaseName = "mt"

func TestMain(m *testing.M) {
	kubetest.Main(m, func(env *kubetest.Env) {
		// The ServiceMonitor CRD, so that the API server can validate one.
		b, err := os.ReadFile(filepath.Join("testdata", "servicemonitors.monitoring.coreos.com.yaml"))
		if err != nil {
			panic(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, crd); err != nil {
			panic(err)
		}
		ctx := context.Background()
		if err := env.Client.Create(ctx, crd); err != nil {
			panic(err)
		}
		// Wait until it is served.
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
				return false, err
			}
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			panic(fmt.Sprintf("ServiceMonitor CRD not established: %v", err))
		}
	})
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "mailtrace") }

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// render renders the chart with the given values (YAML) as `helm install
// --namespace ns` would, schema validation included.
func render(t testing.TB, ns, values string) (map[string]string, error) {
	t.Helper()
	c := loadChart(t)
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	rv, err := chartutil.ToRenderValues(c, vals.AsMap(), chartutil.ReleaseOptions{
		Name: releaseName, Namespace: ns, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Render(c, rv)
}

// objects renders and decodes every object, failing the test on any error.
// NOTES.txt is returned apart.
func objects(t testing.TB, ns, values string) ([]*unstructured.Unstructured, string) {
	t.Helper()
	out, err := render(t, ns, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var names []string
	for name := range out {
		names = append(names, name)
	}
	sort.Strings(names)
	var objs []*unstructured.Unstructured
	notes := ""
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			notes = out[name]
			continue
		}
		if strings.HasSuffix(name, ".tpl") {
			continue
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out[name])))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			j, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			if s := strings.TrimSpace(string(j)); s == "null" || s == "{}" {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(j); err != nil {
				t.Fatalf("%s: not an object: %v\n%s", name, err, doc)
			}
			objs = append(objs, u)
		}
	}
	return objs, notes
}

func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	if o := lookup(objs, kind, name); o != nil {
		return o
	}
	var have []string
	for _, o := range objs {
		have = append(have, o.GetKind()+"/"+o.GetName())
	}
	t.Fatalf("no %s/%s rendered; have %v", kind, name, have)
	return nil
}

func lookup(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func kinds(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// workloads are the Deployments and StatefulSets: the objects with a pod
// template.
func workloads(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	return append(kinds(objs, "Deployment"), kinds(objs, "StatefulSet")...)
}

// podSpec decodes a Deployment's (or StatefulSet's) pod template into the typed API.
func podSpec(t testing.TB, dep *unstructured.Unstructured) corev1.PodSpec {
	t.Helper()
	m, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	b, _ := yaml.Marshal(m)
	var ps corev1.PodSpec
	if err := yaml.UnmarshalStrict(b, &ps); err != nil {
		t.Fatalf("%s: pod spec: %v", dep.GetName(), err)
	}
	return ps
}

func container(t testing.TB, dep *unstructured.Unstructured) corev1.Container {
	t.Helper()
	ps := podSpec(t, dep)
	if len(ps.Containers) != 1 {
		t.Fatalf("%s: want one container, have %d", dep.GetName(), len(ps.Containers))
	}
	return ps.Containers[0]
}

func hasArg(c corev1.Container, arg string) bool {
	for _, a := range c.Args {
		if a == arg {
			return true
		}
	}
	return false
}

func argWithPrefix(c corev1.Container, prefix string) []string {
	var out []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, prefix) {
			out = append(out, a)
		}
	}
	return out
}

func mustArgs(t testing.TB, c corev1.Container, args ...string) {
	t.Helper()
	for _, a := range args {
		if !hasArg(c, a) {
			t.Errorf("container %s lacks arg %q; args: %q", c.Name, a, c.Args)
		}
	}
}

// The value combinations every test walks through.
var combinations = []struct{ name, values string }{
	{"defaults", ``},
	{"embedded-with-ingest", `
ingest:
  enabled: true
  acceptedDomains: [example.com, "*.example.org"]
  contentFilters: ["127.0.0.1:10025"]
  timezone: Europe/Berlin
  linkWait: 10m
  internalNetworks: [10.0.0.0/8, "2001:db8::/32"]
  pendingAfter: 2h
  linesPerSecond: 2.5
  syslogTCP: {enabled: true}
  http: {enabled: true}
  token: {existingSecret: ingest-token, key: token}
  tls: {secretName: ingest-tls, clientCAKey: ca.crt}
`},
	{"postgres-with-ingester", `
store:
  type: postgres
  postgres: {existingSecret: mailtrace-db, dsnKey: url}
manager:
  replicas: 2
ingest:
  enabled: true
  replicas: 3
  acceptedDomains: [example.com]
  syslogTCP: {enabled: true}
  syslogUDP: {enabled: true}
  insecureNoAuth: true
  token: {existingSecret: ingest-token}
  tls: {secretName: ingest-tls, clientCAKey: ca.crt}
  walMaxBytes: 2147483648
  persistence: {size: 5Gi, storageClassName: fast}
`},
	{"default-report-store", `
manager:
  queryTimeout: 45s
  maxConcurrentReconciles: 4
  logLevel: debug
  extraArgs: ["--report-store-check-interval=10m"]
reports:
  workers: 4
  threshold: 72h
  checkInterval: 2m
  defaultStore:
    bucket: mail-reports
    endpoint: http://minio.minio.svc:9000
    prefix: mailtrace
    region: eu-central-1
    insecure: true
    sse: AES256
    caBundle: {configMapName: minio-ca}
    credentials: {existingSecret: reports-credentials, sessionTokenKey: sessionToken}
notifications:
  smtp:
    relay: smtp.example.com:587
    from: mailtrace@example.com
    username: mailtrace
    passwordSecret: {name: smtp-auth}
    startTLS: true
`},
	{"servicemonitor", `
metrics:
  serviceMonitor:
    enabled: true
    interval: 15s
    labels: {release: prometheus}
`},
	{"no-crds", `
crds: {install: false}
`},
	{"crds-not-kept", `
crds: {keep: false}
`},
	// The PostgreSQL example of README's "Install with Helm".
	{"readme-postgres", `
store: {type: postgres, postgres: {existingSecret: mailtrace-db}}
manager: {replicas: 2}
ingest:
  enabled: true
  acceptedDomains: [example.com]
  syslogTCP: {enabled: true}
  token: {existingSecret: mailtrace-ingest-token}
  tls: {secretName: mailtrace-ingest-tls, clientCAKey: ca.crt}
reports:
  defaultStore: {bucket: mail-reports, endpoint: https://s3.example.com, credentials: {existingSecret: reports-credentials}}
metrics: {serviceMonitor: {enabled: true}}
`},
}

func fullname() string { return releaseName + "-mailtrace" }

// Every combination renders, and every pod runs as non-root with a read-only
// root filesystem, no capabilities, no privilege escalation, RuntimeDefault
// seccomp, resource requests and limits, and probes.
func TestSecurityContexts(t *testing.T) {
	for _, tc := range combinations {
		t.Run(tc.name, func(t *testing.T) {
			objs, _ := objects(t, "mailtrace", tc.values)
			deps := workloads(objs)
			if len(deps) == 0 {
				t.Fatal("no Deployment rendered")
			}
			for _, d := range deps {
				ps := podSpec(t, d)
				psc := ps.SecurityContext
				if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
					t.Errorf("%s: pod runAsNonRoot not true", d.GetName())
				}
				if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
					t.Errorf("%s: pod runAsUser unset or root", d.GetName())
				}
				if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: seccomp profile not RuntimeDefault", d.GetName())
				}
				c := container(t, d)
				sc := c.SecurityContext
				if sc == nil {
					t.Fatalf("%s: no container securityContext", d.GetName())
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: readOnlyRootFilesystem not true", d.GetName())
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation not false", d.GetName())
				}
				if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
					t.Errorf("%s: container runAsNonRoot not true", d.GetName())
				}
				if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
					t.Errorf("%s: capabilities %+v, want drop [ALL] and nothing added", d.GetName(), sc.Capabilities)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("%s: resources %+v lack cpu/memory requests or a memory limit", d.GetName(), c.Resources)
				}
				if c.LivenessProbe == nil || c.ReadinessProbe == nil ||
					c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" ||
					c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("%s: probes %+v %+v, want /healthz and /readyz", d.GetName(), c.LivenessProbe, c.ReadinessProbe)
				}
				// The probe port is a port the container declares.
				found := false
				for _, p := range c.Ports {
					if p.Name == c.LivenessProbe.HTTPGet.Port.String() {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: probe port %s not among the container's ports", d.GetName(), c.LivenessProbe.HTTPGet.Port.String())
				}
				// A read-only root filesystem needs a writable /tmp.
				tmp := false
				for _, m := range c.VolumeMounts {
					if m.MountPath == "/tmp" {
						tmp = true
					}
				}
				if !tmp {
					t.Errorf("%s: no /tmp volume", d.GetName())
				}
				if strings.HasSuffix(c.Image, ":") || c.Image == "" {
					t.Errorf("%s: image %q", d.GetName(), c.Image)
				}
			}
		})
	}
}

// Defaults: the embedded store on a PVC, one manager replica with the
// Recreate strategy and leader election, no ingester, metrics Service, no
// ServiceMonitor, the CRDs kept on uninstall.
func TestDefaultsEmbeddedStore(t *testing.T) {
	objs, notes := objects(t, "mailtrace", "")
	mgr := find(t, objs, "Deployment", fullname()+"-manager")
	if r, _, _ := unstructured.NestedInt64(mgr.Object, "spec", "replicas"); r != 1 {
		t.Errorf("replicas %d, want 1", r)
	}
	if s, _, _ := unstructured.NestedString(mgr.Object, "spec", "strategy", "type"); s != "Recreate" {
		t.Errorf("strategy %q, want Recreate", s)
	}
	c := container(t, mgr)
	if c.Args[0] != "manager" {
		t.Errorf("first arg %q, want manager", c.Args[0])
	}
	mustArgs(t, c, "--store=sqlite:///var/lib/mailtrace/mailtrace.db", "--leader-elect",
		"--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--retention=2160h",
		"--report-workers=2", "--report-threshold=240h")
	if a := argWithPrefix(c, "--ingest-"); len(a) != 0 {
		t.Errorf("ingest flags without ingest.enabled: %q", a)
	}
	if a := argWithPrefix(c, "--default-report-store-"); len(a) != 0 {
		t.Errorf("default report store flags without a bucket: %q", a)
	}
	ps := podSpec(t, mgr)
	var claim string
	for _, v := range ps.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	pvc := find(t, objs, "PersistentVolumeClaim", fullname()+"-store")
	if claim != pvc.GetName() {
		t.Errorf("manager mounts claim %q, chart renders %q", claim, pvc.GetName())
	}
	if ps.ServiceAccountName != fullname() {
		t.Errorf("serviceAccountName %q", ps.ServiceAccountName)
	}
	find(t, objs, "ServiceAccount", fullname())
	find(t, objs, "Service", fullname()+"-metrics")
	for _, absent := range []string{fullname() + "-ingester", fullname() + "-ingest"} {
		if o := lookup(objs, "Deployment", absent); o != nil {
			t.Errorf("unexpected Deployment %s", absent)
		}
		if o := lookup(objs, "StatefulSet", absent); o != nil {
			t.Errorf("unexpected StatefulSet %s", absent)
		}
		if o := lookup(objs, "Service", absent); o != nil {
			t.Errorf("unexpected Service %s", absent)
		}
	}
	if len(kinds(objs, "ServiceMonitor")) != 0 {
		t.Error("ServiceMonitor rendered without metrics.serviceMonitor.enabled")
	}
	if len(kinds(objs, "Secret")) != 0 {
		t.Error("the chart renders a Secret; it must only reference them")
	}
	for _, want := range []string{"kubectl apply -f -", "kind: MessageTrace", "kubectl wait --for=condition=Succeeded mt/failed-last-7-days"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
		}
	}
}

// The embedded store with ingest: the manager runs the listeners, the ingest
// Service selects the manager, TLS and token come from Secrets.
func TestEmbeddedStoreWithIngest(t *testing.T) {
	objs, _ := objects(t, "mailtrace", combinations[1].values)
	c := container(t, find(t, objs, "Deployment", fullname()+"-manager"))
	mustArgs(t, c, "--ingest-syslog-tcp=:5140", "--ingest-http=:8090", "--ingest-syslog-udp=",
		"--ingest-accepted-domain=example.com", "--ingest-accepted-domain=*.example.org",
		"--ingest-tls-cert=/etc/mailtrace/ingest-tls/tls.crt", "--ingest-tls-key=/etc/mailtrace/ingest-tls/tls.key",
		"--ingest-tls-client-ca=/etc/mailtrace/ingest-tls/ca.crt",
		"--ingest-token-file=/etc/mailtrace/ingest-token/token",
		"--ingest-state-file=/var/lib/mailtrace/ingest-state.json", "--ingest-wal-max-bytes=1073741824",
		"--ingest-max-connections-per-ip=32", "--ingest-max-messages-in-flight=20000",
		"--ingest-max-request-bytes=16777216", "--ingest-max-line-bytes=65536",
		"--ingest-timezone=Europe/Berlin", "--ingest-link-wait=10m", "--ingest-lines-per-second=2.5",
		"--ingest-internal-network=10.0.0.0/8", "--ingest-internal-network=2001:db8::/32", "--ingest-pending-after=2h",
		"--ingest-content-filter=127.0.0.1:10025")
	if hasArg(c, "--ingest-insecure-no-auth") {
		t.Error("--ingest-insecure-no-auth without ingest.insecureNoAuth")
	}
	svc := find(t, objs, "Service", fullname()+"-ingest")
	if comp, _, _ := unstructured.NestedString(svc.Object, "spec", "selector", "app.kubernetes.io/component"); comp != "manager" {
		t.Errorf("ingest Service selects %q, want manager", comp)
	}
	if lookup(objs, "Deployment", fullname()+"-ingester") != nil || lookup(objs, "StatefulSet", fullname()+"-ingester") != nil {
		t.Error("an ingester with the embedded store")
	}
}

// PostgreSQL: the DSN from a Secret (never an argument), several manager
// replicas with leader election and a rolling update, the ingester as its own
// StatefulSet (its state and write-ahead log on a PVC of its own) and
// Service with ClientIP affinity, TLS and token mounted.
func TestPostgresWithIngester(t *testing.T) {
	objs, _ := objects(t, "mailtrace", combinations[2].values)
	mgr := find(t, objs, "Deployment", fullname()+"-manager")
	if r, _, _ := unstructured.NestedInt64(mgr.Object, "spec", "replicas"); r != 2 {
		t.Errorf("manager replicas %d, want 2", r)
	}
	if s, _, _ := unstructured.NestedString(mgr.Object, "spec", "strategy", "type"); s == "Recreate" {
		t.Error("Recreate strategy with PostgreSQL")
	}
	mc := container(t, mgr)
	mustArgs(t, mc, "--leader-elect")
	if a := argWithPrefix(mc, "--store"); len(a) != 0 {
		t.Errorf("manager has %q; the DSN must come from the Secret", a)
	}
	if a := argWithPrefix(mc, "--ingest-"); len(a) != 0 {
		t.Errorf("manager runs ingest beside an ingester: %q", a)
	}
	if len(kinds(objs, "PersistentVolumeClaim")) != 0 {
		t.Error("a PVC with PostgreSQL")
	}
	checkStoreEnv := func(c corev1.Container) {
		t.Helper()
		for _, e := range c.Env {
			if e.Name == "MAILTRACE_STORE" {
				if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
					e.ValueFrom.SecretKeyRef.Name != "mailtrace-db" || e.ValueFrom.SecretKeyRef.Key != "url" {
					t.Errorf("%s: MAILTRACE_STORE %+v, want secretKeyRef mailtrace-db/url", c.Name, e)
				}
				return
			}
		}
		t.Errorf("%s: no MAILTRACE_STORE", c.Name)
	}
	checkStoreEnv(mc)

	if lookup(objs, "Deployment", fullname()+"-ingester") != nil {
		t.Error("the ingester as a Deployment: its write-ahead log would not follow it")
	}
	ing := find(t, objs, "StatefulSet", fullname()+"-ingester")
	var sts appsv1.StatefulSet
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(ing.Object, &sts); err != nil {
		t.Fatal(err)
	}
	if r := sts.Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("ingester replicas %v, want 3", r)
	}
	if sts.Spec.ServiceName != fullname()+"-ingest" {
		t.Errorf("ingester serviceName %q", sts.Spec.ServiceName)
	}
	ic := container(t, ing)
	checkStoreEnv(ic)
	if ic.Args[0] != "ingest" {
		t.Errorf("ingester's first arg %q", ic.Args[0])
	}
	mustArgs(t, ic, "--syslog-tcp=:5140", "--syslog-udp=:5140", "--http=:8090", "--insecure-no-auth",
		"--accepted-domain=example.com", "--token-file=/etc/mailtrace/ingest-token/token",
		"--tls-cert=/etc/mailtrace/ingest-tls/tls.crt", "--tls-client-ca=/etc/mailtrace/ingest-tls/ca.crt",
		"--metrics-bind-address=:8080", "--state-file=/var/lib/mailtrace/ingest-state.json", "--wal-max-bytes=2147483648",
		"--max-connections-per-ip=32", "--max-messages-in-flight=20000")
	// the state file and the write-ahead log (beside it) on the claim of
	// each pod, of the size values give
	if n := len(sts.Spec.VolumeClaimTemplates); n != 1 {
		t.Fatalf("%d volumeClaimTemplates, want 1", n)
	}
	vct := sts.Spec.VolumeClaimTemplates[0]
	if got := vct.Spec.Resources.Requests.Storage().String(); got != "5Gi" {
		t.Errorf("the ingester's claim asks for %s, want 5Gi", got)
	}
	if vct.Spec.StorageClassName == nil || *vct.Spec.StorageClassName != "fast" {
		t.Errorf("the ingester's claim storageClassName %v, want fast", vct.Spec.StorageClassName)
	}
	if !slices.Contains(vct.Spec.AccessModes, corev1.ReadWriteOnce) {
		t.Errorf("the ingester's claim access modes %v", vct.Spec.AccessModes)
	}
	mounted := false
	for _, m := range ic.VolumeMounts {
		if m.Name == vct.Name && m.MountPath == "/var/lib/mailtrace" && !m.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("the ingester does not mount its claim %q at /var/lib/mailtrace: %+v", vct.Name, ic.VolumeMounts)
	}
	ips := podSpec(t, ing)
	for _, v := range ips.Volumes {
		if v.Name == vct.Name {
			t.Errorf("a pod volume %q hides the claim", v.Name)
		}
	}
	if ips.AutomountServiceAccountToken == nil || *ips.AutomountServiceAccountToken {
		t.Error("the ingester mounts a service account token it does not use")
	}
	secrets := map[string]string{}
	for _, v := range ips.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	if secrets["ingest-tls"] != "ingest-tls" || secrets["ingest-token"] != "ingest-token" {
		t.Errorf("ingester Secret volumes %v", secrets)
	}
	svc := find(t, objs, "Service", fullname()+"-ingest")
	if a, _, _ := unstructured.NestedString(svc.Object, "spec", "sessionAffinity"); a != "ClientIP" {
		t.Errorf("sessionAffinity %q, want ClientIP", a)
	}
	if comp, _, _ := unstructured.NestedString(svc.Object, "spec", "selector", "app.kubernetes.io/component"); comp != "ingester" {
		t.Errorf("ingest Service selects %q, want ingester", comp)
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	var got []string
	for _, p := range ports {
		pm := p.(map[string]any)
		got = append(got, fmt.Sprintf("%v/%v/%v", pm["name"], pm["protocol"], pm["port"]))
	}
	sort.Strings(got)
	if want := []string{"http/TCP/8090", "syslog-tcp/TCP/5140", "syslog-udp/UDP/5140"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ingest Service ports %v, want %v", got, want)
	}
	find(t, objs, "Service", fullname()+"-ingester-metrics")
}

// The default report store and the SMTP relay: flags from values, the
// credentials, CA and password mounted from Secrets and a ConfigMap.
func TestDefaultReportStoreAndSMTP(t *testing.T) {
	objs, _ := objects(t, "mailtrace", combinations[3].values)
	mgr := find(t, objs, "Deployment", fullname()+"-manager")
	c := container(t, mgr)
	mustArgs(t, c, "--report-workers=4", "--report-threshold=72h", "--report-store-check-interval=2m",
		"--query-timeout=45s", "--max-concurrent-reconciles=4", "--zap-log-level=debug",
		"--default-report-store-bucket=mail-reports", "--default-report-store-endpoint=http://minio.minio.svc:9000",
		"--default-report-store-prefix=mailtrace", "--default-report-store-region=eu-central-1",
		"--default-report-store-insecure", "--default-report-store-sse=AES256",
		"--default-report-store-ca-file=/etc/mailtrace/report-store-ca/ca.crt",
		"--default-report-store-credentials-dir=/etc/mailtrace/report-store-credentials",
		"--smtp-relay=smtp.example.com:587", "--smtp-from=mailtrace@example.com", "--smtp-username=mailtrace",
		"--smtp-password-file=/etc/mailtrace/smtp/password", "--smtp-starttls")
	ps := podSpec(t, mgr)
	vols := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		vols[v.Name] = v
	}
	cred := vols["report-store-credentials"].Secret
	if cred == nil || cred.SecretName != "reports-credentials" {
		t.Fatalf("credentials volume %+v", vols["report-store-credentials"])
	}
	var paths []string
	for _, it := range cred.Items {
		paths = append(paths, it.Key+"->"+it.Path)
	}
	if want := []string{"accessKeyID->accessKeyID", "secretAccessKey->secretAccessKey", "sessionToken->sessionToken"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("credential files %v, want %v", paths, want)
	}
	if cm := vols["report-store-ca"].ConfigMap; cm == nil || cm.Name != "minio-ca" || cm.Items[0].Path != "ca.crt" {
		t.Errorf("CA volume %+v", vols["report-store-ca"])
	}
	if s := vols["smtp-password"].Secret; s == nil || s.SecretName != "smtp-auth" || s.Items[0].Key != "password" {
		t.Errorf("SMTP password volume %+v", vols["smtp-password"])
	}
	for _, e := range c.Env {
		if e.Value != "" {
			t.Errorf("env %s has an inline value", e.Name)
		}
	}
}

// metrics.serviceMonitor.enabled renders a ServiceMonitor selecting the
// metrics Service's port.
func TestServiceMonitor(t *testing.T) {
	objs, _ := objects(t, "monitoring-ns", combinations[4].values)
	sm := find(t, objs, "ServiceMonitor", fullname())
	if l := sm.GetLabels()["release"]; l != "prometheus" {
		t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
	}
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	svc := find(t, objs, "Service", fullname()+"-metrics")
	for k, v := range sel {
		if svc.GetLabels()[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s; the metrics Service has %v", k, v, svc.GetLabels())
		}
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["interval"] != "15s" {
		t.Errorf("endpoints %v", eps)
	}
	// metrics off: neither Service nor ServiceMonitor, and the endpoint is off.
	objs, _ = objects(t, "mailtrace", "metrics: {enabled: false, serviceMonitor: {enabled: true}}")
	if len(kinds(objs, "ServiceMonitor")) != 0 || lookup(objs, "Service", fullname()+"-metrics") != nil {
		t.Error("metrics off still renders a ServiceMonitor or metrics Service")
	}
	mustArgs(t, container(t, find(t, objs, "Deployment", fullname()+"-manager")), "--metrics-bind-address=0")
}

// crdFiles returns the YAML files of dir by name.
func crdFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// The chart's copies of the CRDs and of the manager's ClusterRole are those
// of config/ (`make manifests` copies them): a CRD or rule added or changed
// in config/ fails here until the chart has it.
func TestChartCopiesMatchConfig(t *testing.T) {
	root := repoRoot(t)
	want := crdFiles(t, filepath.Join(root, "config", "crd", "bases"))
	got := crdFiles(t, filepath.Join(chartDir(t), "crds-src"))
	if len(want) == 0 {
		t.Fatal("no CRDs in config/crd/bases")
	}
	for name, b := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("charts/mailtrace/crds-src/%s missing: run make manifests", name)
		case !bytes.Equal(g, b):
			t.Errorf("charts/mailtrace/crds-src/%s differs from config/crd/bases: run make manifests", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("charts/mailtrace/crds-src/%s is not in config/crd/bases: remove it", name)
		}
	}
	role, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	chartRole, err := os.ReadFile(filepath.Join(chartDir(t), "rbac-src", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(role, chartRole) {
		t.Error("charts/mailtrace/rbac-src/role.yaml differs from config/rbac/role.yaml: run make manifests")
	}
}

// The chart installs every CRD of config/crd/bases as it is there, plus the
// keep annotation (unless crds.keep is false), and none with crds.install false.
func TestCRDs(t *testing.T) {
	root := repoRoot(t)
	files := crdFiles(t, filepath.Join(root, "config", "crd", "bases"))
	want := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for name, b := range files {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(b, crd); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[crd.Name] = crd
	}
	for _, tc := range []struct {
		values  string
		install bool
		keep    bool
	}{{"", true, true}, {combinations[6].values, true, false}, {combinations[5].values, false, false}} {
		objs, _ := objects(t, "mailtrace", tc.values)
		crds := kinds(objs, "CustomResourceDefinition")
		if !tc.install {
			if len(crds) != 0 {
				t.Errorf("%q: %d CRDs with crds.install false", tc.values, len(crds))
			}
			continue
		}
		if len(crds) != len(want) {
			t.Errorf("%q: %d CRDs rendered, config/crd/bases has %d", tc.values, len(crds), len(want))
		}
		for _, u := range crds {
			b, _ := yaml.Marshal(u.Object)
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.UnmarshalStrict(b, got); err != nil {
				t.Fatalf("%s: %v", u.GetName(), err)
			}
			w, ok := want[got.Name]
			if !ok {
				t.Errorf("rendered CRD %s is not in config/crd/bases", got.Name)
				continue
			}
			if !reflect.DeepEqual(got.Spec, w.Spec) {
				t.Errorf("rendered CRD %s: spec differs from config/crd/bases", got.Name)
			}
			if _, has := got.Annotations["helm.sh/resource-policy"]; has != tc.keep {
				t.Errorf("%q: CRD %s annotations %v, keep %v", tc.values, got.Name, got.Annotations, tc.keep)
			}
			if tc.keep && got.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s resource policy %q", got.Name, got.Annotations["helm.sh/resource-policy"])
			}
			for k, v := range w.Annotations {
				if got.Annotations[k] != v {
					t.Errorf("CRD %s lost annotation %s=%s", got.Name, k, v)
				}
			}
		}
	}
}

// The ClusterRole has exactly the rules of config/rbac/role.yaml, bound to
// the chart's ServiceAccount; leader election is a namespaced Role.
func TestRBAC(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Rules []any `json:"rules"`
	}
	if err := yaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	objs, _ := objects(t, "mailtrace", "")
	cr := find(t, objs, "ClusterRole", fullname()+"-manager")
	got, _, _ := unstructured.NestedSlice(cr.Object, "rules")
	if !reflect.DeepEqual(got, want.Rules) {
		t.Errorf("ClusterRole rules differ from config/rbac/role.yaml:\n got %v\nwant %v", got, want.Rules)
	}
	crb := find(t, objs, "ClusterRoleBinding", fullname()+"-manager")
	subj, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
	if s := subj[0].(map[string]any); s["name"] != fullname() || s["namespace"] != "mailtrace" {
		t.Errorf("binding subject %v", s)
	}
	role := find(t, objs, "Role", fullname()+"-leader-election")
	if role.GetNamespace() != "mailtrace" {
		t.Errorf("leader election Role in %q", role.GetNamespace())
	}
	find(t, objs, "RoleBinding", fullname()+"-leader-election")
	// The manager's, and mailtrace-view and mailtrace-edit of config/rbac/aggregate.yaml (rbac.aggregate).
	if n := len(kinds(objs, "ClusterRole")); n != 3 {
		t.Errorf("%d ClusterRoles, want the manager's, mailtrace-view and mailtrace-edit", n)
	}
	for _, name := range []string{"mailtrace-view", "mailtrace-edit"} {
		if find(t, objs, "ClusterRole", name).GetLabels()["rbac.authorization.k8s.io/aggregate-to-edit"] != "true" {
			t.Errorf("ClusterRole %s is not aggregated to edit", name)
		}
	}
	objs, _ = objects(t, "mailtrace", "rbac: {aggregate: false}")
	if len(kinds(objs, "ClusterRole")) != 1 {
		t.Error("aggregated ClusterRoles rendered with rbac.aggregate false")
	}
	objs, _ = objects(t, "mailtrace", "rbac: {create: false}")
	if len(kinds(objs, "ClusterRole"))+len(kinds(objs, "Role")) != 0 {
		t.Error("RBAC rendered with rbac.create false")
	}
}

// Values the schema or the chart refuse, each with a message that names the
// problem. Credentials cannot be given inline: there is no key for them.
func TestRefusedValues(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"unknown store type", "store: {type: mysql}", "store"},
		{"unknown top-level key", "replicaCount: 2", "replicaCount"},
		{"typo in a nested key", "manager: {replica: 2}", "replica"},
		{"inline DSN", "store: {type: postgres, postgres: {dsn: 'postgres://mt:hunter2@db/mt'}}", "dsn"},
		{"inline S3 secret key", "reports: {defaultStore: {credentials: {secretAccessKey: hunter2}}}", "secretAccessKey"},
		{"inline SMTP password", "notifications: {smtp: {password: hunter2}}", "password"},
		{"inline ingest token", "ingest: {token: {value: hunter2}}", "value"},
		{"postgres without its Secret", "store: {type: postgres}", "existingSecret"},
		{"two replicas on SQLite", "manager: {replicas: 2}", "replicas"},
		{"zero replicas", "manager: {replicas: 0}", "replicas"},
		{"wrong type", "ingest: {enabled: 'yes'}", "enabled"},
		{"bad duration", "reports: {threshold: 10days}", "threshold"},
		{"bad port", "metrics: {port: 70000}", "port"},
		{"bad log level", "manager: {logLevel: verbose}", "logLevel"},
		{"bad service type", "ingest: {service: {type: ExternalName}}", "type"},
		{"bad session affinity", "ingest: {service: {sessionAffinity: Sticky}}", "sessionAffinity"},
		{"bad SSE", "reports: {defaultStore: {sse: DES}}", "sse"},
		{"HTTP ingest without auth", "ingest: {enabled: true}", "ingest.token.existingSecret"},
		{"syslog TCP without client CA", "ingest: {enabled: true, syslogTCP: {enabled: true}, token: {existingSecret: t}}", "clientCAKey"},
		{"UDP without insecureNoAuth", "ingest: {enabled: true, http: {enabled: false}, syslogUDP: {enabled: true}}", "insecureNoAuth"},
		{"no listener", "ingest: {enabled: true, http: {enabled: false}}", "listener"},
		{"client CA without certificate", "ingest: {enabled: true, token: {existingSecret: t}, tls: {clientCAKey: ca.crt}}", "secretName"},
		{"two CA sources", "reports: {defaultStore: {bucket: b, caBundle: {configMapName: a, secretName: b}}}", "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, "mailtrace", tc.values)
			if err == nil {
				t.Fatalf("values %q accepted", tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// No value of a Secret is ever in the rendered manifests: the chart renders
// no Secret, no env var carries an inline value that looks like a credential,
// and the names of the referenced Secrets appear only as references.
func TestNoSecretValuesRendered(t *testing.T) {
	for _, tc := range combinations {
		out, err := render(t, "mailtrace", tc.values)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for name, s := range out {
			for _, bad := range []string{"kind: Secret\n", "postgres://", "password:", "secretAccessKey:", "hunter2", "BEGIN "} {
				if strings.Contains(s, bad) {
					t.Errorf("%s: %s contains %q", tc.name, name, bad)
				}
			}
		}
		objs, _ := objects(t, "mailtrace", tc.values)
		for _, d := range workloads(objs) {
			for _, e := range container(t, d).Env {
				if e.ValueFrom == nil && e.Value != "" {
					t.Errorf("%s: %s env %s=%q inline", tc.name, d.GetName(), e.Name, e.Value)
				}
			}
		}
	}
}

// Every object of every combination is accepted by the real kube-apiserver
// (dry-run create, or update for the CRDs envtest installed, with
// strict field validation): the API server's
// schemas, the CRDs' schemas and admission all check them.
func TestManifestsValidateAgainstAPIServer(t *testing.T) {
	env := kubetest.Get(t)
	ctx := context.Background()
	for i, tc := range combinations {
		t.Run(tc.name, func(t *testing.T) {
			ns := fmt.Sprintf("chart-%d-%d", i, time.Now().UnixNano()%100000)
			if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				t.Fatal(err)
			}
			objs, _ := objects(t, ns, tc.values)
			if len(objs) < 5 {
				t.Fatalf("only %d objects rendered", len(objs))
			}
			// A control: the API server refuses a field it does not know, so
			// the dry runs below validate for real.
			bad := find(t, objs, "Deployment", fullname()+"-manager").DeepCopy()
			if err := unstructured.SetNestedField(bad.Object, int64(1), "spec", "template", "spec", "replicaz"); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Create(ctx, bad, client.DryRunAll, client.FieldValidation("Strict")); err == nil {
				t.Fatal("the API server accepted a Deployment with an unknown field: the dry run validates nothing")
			}
			for _, o := range objs {
				var err error
				if o.GetKind() == "CustomResourceDefinition" {
					// envtest installed config/crd/bases: an upgrade to the chart's.
					cur := &unstructured.Unstructured{}
					cur.SetGroupVersionKind(o.GroupVersionKind())
					if err = env.Client.Get(ctx, client.ObjectKeyFromObject(o), cur); err == nil {
						o.SetResourceVersion(cur.GetResourceVersion())
						err = env.Client.Update(ctx, o, client.DryRunAll, client.FieldValidation("Strict"))
					}
				} else {
					err = env.Client.Create(ctx, o, client.DryRunAll, client.FieldValidation("Strict"))
				}
				if err != nil {
					b, _ := yaml.Marshal(o.Object)
					t.Errorf("%s %s/%s refused by the API server: %v\n%s", o.GetKind(), o.GetNamespace(), o.GetName(), err, b)
				}
			}
		})
	}
}

// Every container's args are a command of the real binary and flags it
// parses (names, durations, numbers, time zones), so a renamed or retyped
// flag fails here instead of in a crash-looping pod.
func TestArgsParseWithTheBinarysFlags(t *testing.T) {
	for _, tc := range combinations {
		objs, _ := objects(t, "mailtrace", tc.values)
		for _, d := range workloads(objs) {
			c := container(t, d)
			root := cli.NewRootCommand()
			sub, rest, err := root.Find(c.Args)
			if err != nil || sub == root {
				t.Errorf("%s: %s: args %q name no command: %v", tc.name, d.GetName(), c.Args, err)
				continue
			}
			if err := sub.ParseFlags(rest); err != nil {
				t.Errorf("%s: %s: mailtrace %s refuses its flags: %v\nargs: %q", tc.name, d.GetName(), sub.Name(), err, c.Args)
				continue
			}
			if extra := sub.Flags().Args(); len(extra) != 0 {
				t.Errorf("%s: %s: stray arguments %q", tc.name, d.GetName(), extra)
			}
		}
	}
	// A control: a flag the binary does not have is refused.
	root := cli.NewRootCommand()
	sub, rest, _ := root.Find([]string{"manager", "--no-such-flag"})
	if err := sub.ParseFlags(rest); err == nil {
		t.Error("an unknown flag parsed: the check above checks nothing")
	}
}
