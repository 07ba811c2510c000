package ingester_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m, nil) }

// The Secrets the ingester reads, as documented in ingester.yaml and README.
const (
	dsnSecret, dsnKey     = "mailtrace-db", "dsn"
	tokenSecret, tokenKey = "mailtrace-ingest-token", "token"
	tlsSecret             = "mailtrace-ingest-tls"
)

// variant is one way to build the ingester: config/ingester as it is, or
// with the syslog-udp component.
type variant struct {
	name string
	dir  func(t *testing.T) string
	udp  bool
}

var variants = []variant{
	{name: "config/ingester", dir: func(*testing.T) string { return "." }},
	{name: "with syslog-udp", dir: withUDP, udp: true},
}

// withUDP writes a kustomization that uses config/ingester with the
// syslog-udp component, as README tells users to.
func withUDP(t *testing.T) string {
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(dir, filepath.Join(here, p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "resources:\n  - " + rel(".") + "\ncomponents:\n  - " + rel("syslog-udp") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// build runs `kubectl kustomize dir` and returns the objects.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{} // JSON numbers as int64, so that DeepCopy works
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

// rendered is the built ingester, typed.
type rendered struct {
	objs []*unstructured.Unstructured
	sa   *corev1.ServiceAccount
	sts  *appsv1.StatefulSet
	svc  *corev1.Service
}

func render(t *testing.T, v variant) rendered {
	t.Helper()
	r := rendered{objs: build(t, v.dir(t))}
	kinds := map[string]int{}
	for _, o := range r.objs {
		kinds[o.GetKind()]++
		if o.GetNamespace() != "mailtrace-system" {
			t.Errorf("%s %s in namespace %q, want mailtrace-system", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		var into runtime.Object
		switch o.GetKind() {
		case "ServiceAccount":
			r.sa = &corev1.ServiceAccount{}
			into = r.sa
		case "StatefulSet":
			r.sts = &appsv1.StatefulSet{}
			into = r.sts
		case "Service":
			r.svc = &corev1.Service{}
			into = r.svc
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	if len(r.objs) != 3 || kinds["ServiceAccount"] != 1 || kinds["StatefulSet"] != 1 || kinds["Service"] != 1 {
		t.Fatalf("%s builds %v, want a ServiceAccount, a StatefulSet and a Service", v.name, kinds)
	}
	return r
}

func (r rendered) container(t *testing.T) corev1.Container {
	t.Helper()
	cs := r.sts.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("StatefulSet %s has %d containers, want 1", r.sts.Name, len(cs))
	}
	return cs[0]
}

// ingestCommand parses args with the flag set of the real `mailtrace
// ingest` command, as the binary in the image would.
func ingestCommand(t *testing.T, args []string) *cobra.Command {
	t.Helper()
	root := cli.NewRootCommand()
	sub, rest, err := root.Find(args)
	if err != nil || sub == root || sub.Name() != "ingest" {
		t.Fatalf("args %q do not name the ingest command (found %q): %v", args, sub.Name(), err)
	}
	if err := sub.ParseFlags(rest); err != nil {
		t.Fatalf("mailtrace ingest refuses the StatefulSet's flags: %v\nargs: %q", err, args)
	}
	if extra := sub.Flags().Args(); len(extra) != 0 {
		t.Fatalf("stray arguments %q (ingest takes none)", extra)
	}
	return sub
}

func flag(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	if f == nil {
		t.Fatalf("mailtrace ingest has no flag --%s", name)
	}
	return f.Value.String()
}

// listener is an address the ingester listens on, from its flags.
type listener struct {
	flag     string
	port     int32
	protocol corev1.Protocol
}

func listeners(t *testing.T, cmd *cobra.Command) []listener {
	t.Helper()
	var out []listener
	for _, l := range []struct {
		flag     string
		protocol corev1.Protocol
	}{{"metrics-bind-address", corev1.ProtocolTCP}, {"http", corev1.ProtocolTCP}, {"syslog-tcp", corev1.ProtocolTCP}, {"syslog-udp", corev1.ProtocolUDP}} {
		addr := flag(t, cmd, l.flag)
		if addr == "" || addr == "0" {
			continue
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("--%s=%s: %v", l.flag, addr, err)
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			t.Fatalf("--%s=%s: port %q: %v", l.flag, addr, p, err)
		}
		out = append(out, listener{l.flag, int32(n), l.protocol})
	}
	return out
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// protocol is a Service port's protocol (TCP when unset).
func protocol(sp corev1.ServicePort) corev1.Protocol {
	if sp.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return sp.Protocol
}

// containerPort resolves a named port of the container, or a numbered one
// of the given protocol.
func containerPort(c corev1.Container, p intstr.IntOrString, proto corev1.Protocol) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if cp.Protocol == "" {
			cp.Protocol = corev1.ProtocolTCP
		}
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal && cp.Protocol == proto) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// The StatefulSet runs `mailtrace ingest` with flags the real command parses,
// two replicas, the DSN from a Secret; every listener of its flags is a
// container port of the right protocol and, but metrics, a Service port
// that targets it; the probes reach the metrics listener; every file a flag
// names is on a mounted volume (the state file, and the write-ahead log
// beside it, on the writable claim each pod gets).
func TestIngesterManifests(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			r := render(t, v)
			dep, svc, pod := r.sts, r.svc, r.sts.Spec.Template
			if n := dep.Spec.Replicas; n == nil || *n != 2 {
				t.Errorf("StatefulSet replicas %s, want 2", fmt.Sprint(ptrValue(n)))
			}
			if dep.Spec.ServiceName != svc.Name {
				t.Errorf("StatefulSet serviceName %q, the Service is %q", dep.Spec.ServiceName, svc.Name)
			}
			if pod.Spec.ServiceAccountName != r.sa.Name {
				t.Errorf("pods run as %q, the ServiceAccount is %q", pod.Spec.ServiceAccountName, r.sa.Name)
			}
			if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
				t.Error("the ingester does not talk to the API server: automountServiceAccountToken must be false")
			}
			for k, want := range dep.Spec.Selector.MatchLabels {
				if pod.Labels[k] != want {
					t.Errorf("the StatefulSet's selector %s=%s does not match its pods %v", k, want, pod.Labels)
				}
			}
			if len(svc.Spec.Selector) == 0 {
				t.Fatal("the Service selects nothing")
			}
			for k, want := range svc.Spec.Selector {
				if pod.Labels[k] != want {
					t.Errorf("the Service's selector %s=%s does not select the ingester pods %v", k, want, pod.Labels)
				}
			}
			if svc.Spec.Selector["app.kubernetes.io/component"] != "ingester" {
				t.Errorf("the Service's selector %v would also select the manager", svc.Spec.Selector)
			}
			if svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
				t.Errorf("sessionAffinity %q: each mail server's lines must reach one ingester", svc.Spec.SessionAffinity)
			}

			c := r.container(t)
			cmd := ingestCommand(t, c.Args)
			if cmd.Flags().Changed("store") {
				t.Error("the store URL (with its password) is in args: it must come from the Secret, as " + cli.EnvStore)
			}
			var dsn bool
			for _, e := range c.Env {
				if e.Value != "" {
					t.Errorf("env %s=%q inline: Secrets only", e.Name, e.Value)
				}
				if e.Name == cli.EnvStore && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
					e.ValueFrom.SecretKeyRef.Name == dsnSecret && e.ValueFrom.SecretKeyRef.Key == dsnKey {
					dsn = true
				}
			}
			if !dsn {
				t.Errorf("no %s from Secret %s key %s in env %+v", cli.EnvStore, dsnSecret, dsnKey, c.Env)
			}
			if got := flag(t, cmd, "insecure-no-auth"); got != strconv.FormatBool(v.udp) {
				t.Errorf("--insecure-no-auth=%s; want it only with the syslog-udp component", got)
			}

			// Listeners, container ports, Service ports.
			ls := listeners(t, cmd)
			want := map[string]bool{"metrics-bind-address": true, "http": true, "syslog-tcp": true, "syslog-udp": v.udp}
			got := map[string]bool{}
			matched := map[string]bool{}
			for _, l := range ls {
				got[l.flag] = true
				cp, ok := containerPort(c, intstr.FromInt32(l.port), l.protocol)
				if !ok || cp.Protocol != l.protocol {
					t.Errorf("--%s listens on %d/%s: no such container port in %+v", l.flag, l.port, l.protocol, c.Ports)
					continue
				}
				matched[cp.Name] = true
				if l.flag == "metrics-bind-address" {
					continue
				}
				var exposed bool
				for _, sp := range svc.Spec.Ports {
					if tp, ok := containerPort(c, sp.TargetPort, protocol(sp)); ok && tp.Name == cp.Name && tp.Protocol == cp.Protocol {
						exposed = true
					}
				}
				if !exposed {
					t.Errorf("--%s (container port %s, %d/%s) is not exposed by Service %s", l.flag, cp.Name, l.port, l.protocol, svc.Name)
				}
			}
			for f, w := range want {
				if got[f] != w {
					t.Errorf("--%s listening: %v, want %v", f, got[f], w)
				}
			}
			for _, cp := range c.Ports {
				if !matched[cp.Name] {
					t.Errorf("container port %s (%d/%s) is no listener of the args %q", cp.Name, cp.ContainerPort, cp.Protocol, c.Args)
				}
			}
			for _, sp := range svc.Spec.Ports {
				proto := protocol(sp)
				cp, ok := containerPort(c, sp.TargetPort, proto)
				switch {
				case !ok:
					t.Errorf("Service port %s targets %s: no such container port", sp.Name, sp.TargetPort.String())
				case cp.Protocol != proto:
					t.Errorf("Service port %s is %s, its container port %s %s", sp.Name, proto, cp.Name, cp.Protocol)
				case cp.ContainerPort != sp.Port:
					t.Errorf("Service port %s is %d, the ingester listens on %d", sp.Name, sp.Port, cp.ContainerPort)
				case cp.Name == "metrics":
					t.Errorf("Service port %s exposes metrics to mail servers", sp.Name)
				}
			}

			// Probes reach /healthz and /readyz on the metrics listener.
			for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no HTTP probe of %s", name)
					continue
				}
				cp, ok := containerPort(c, p.HTTPGet.Port, corev1.ProtocolTCP)
				if p.HTTPGet.Path != name || !ok || cp.Name != "metrics" {
					t.Errorf("probe %s on port %s, want %s on the metrics port", p.HTTPGet.Path, p.HTTPGet.Port.String(), name)
				}
			}

			// Files the flags name are on volumes; the root filesystem is read-only.
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("container securityContext %+v: want a read-only root filesystem and no privilege escalation", sc)
			}
			volumes := map[string]corev1.Volume{}
			for _, vol := range pod.Spec.Volumes {
				volumes[vol.Name] = vol
			}
			claims := map[string]bool{}
			for _, pvc := range dep.Spec.VolumeClaimTemplates {
				claims[pvc.Name] = true
				if pvc.Spec.Resources.Requests.Storage().IsZero() {
					t.Errorf("the claim %s asks for no storage", pvc.Name)
				}
			}
			files := map[string]string{ // flag: the Secret it comes from ("" for none)
				"token-file": tokenSecret, "tls-cert": tlsSecret, "tls-key": tlsSecret, "tls-client-ca": tlsSecret, "state-file": "",
			}
			for f, secret := range files {
				p := flag(t, cmd, f)
				if p == "" {
					t.Errorf("--%s is not set", f)
					continue
				}
				var mount *corev1.VolumeMount
				for i, m := range c.VolumeMounts {
					if path.Dir(p) == path.Clean(m.MountPath) {
						mount = &c.VolumeMounts[i]
					}
				}
				if mount == nil {
					t.Errorf("--%s=%s is on no mounted volume", f, p)
					continue
				}
				if secret == "" {
					// kept across restarts and rescheduling: a claim of its own
					if mount.ReadOnly || !claims[mount.Name] {
						t.Errorf("--%s=%s: volume %s must be a writable volumeClaimTemplate", f, p, mount.Name)
					}
					if _, ok := volumes[mount.Name]; ok {
						t.Errorf("--%s=%s: a pod volume %s hides the claim", f, p, mount.Name)
					}
					continue
				}
				vol, ok := volumes[mount.Name]
				if !ok {
					t.Errorf("volume mount %s has no volume", mount.Name)
					continue
				}
				if vol.Secret == nil || vol.Secret.SecretName != secret {
					t.Errorf("--%s=%s: volume %s is not the Secret %s", f, p, vol.Name, secret)
					continue
				}
				var paths []string
				for _, it := range vol.Secret.Items {
					paths = append(paths, it.Path)
					if f == "token-file" && it.Path == path.Base(p) && it.Key != tokenKey {
						t.Errorf("--token-file is the Secret's key %s, want %s", it.Key, tokenKey)
					}
				}
				if len(paths) > 0 && !slices.Contains(paths, path.Base(p)) {
					t.Errorf("--%s=%s: the Secret volume %s holds only %v", f, p, vol.Name, paths)
				}
			}

			// The binary's own start-up checks (every listener can
			// authenticate its senders, or --insecure-no-auth; TLS flags
			// complete) pass: it gets as far as opening the store.
			if err := startUntilStore(t, c.Args); err != nil {
				t.Errorf("mailtrace ingest would not start with the StatefulSet's args: %v", err)
			}
		})
	}
}

// startUntilStore runs `mailtrace ingest` with args and a store URL nothing
// can open: nil when it got as far as opening the store (every check of its
// flags passed), else the error it stopped with.
func startUntilStore(t *testing.T, args []string) error {
	t.Helper()
	t.Setenv(cli.EnvIngestToken, "")
	root := cli.NewRootCommand()
	root.SetArgs(append(slices.Clone(args), "--store=unchecked://store"))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil && strings.Contains(err.Error(), `unknown scheme "unchecked"`) {
		return nil
	}
	if err == nil {
		return errors.New("it ran and returned without an error")
	}
	return err
}

// A control for TestIngesterManifests: args the binary refuses at start are
// refused by startUntilStore, so its check checks something.
func TestStartUntilStoreRefuses(t *testing.T) {
	r := render(t, variants[0])
	args := r.container(t).Args
	var noToken []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--token-file=") && !strings.HasPrefix(a, "--tls-client-ca=") {
			noToken = append(noToken, a)
		}
	}
	err := startUntilStore(t, noToken)
	if err == nil || !strings.Contains(err.Error(), "unauthenticated") {
		t.Errorf("without --token-file and --tls-client-ca: %v; want the refusal of unauthenticated input", err)
	}
	if err := startUntilStore(t, append(slices.Clone(args), "--syslog-udp=:5140")); err == nil {
		t.Error("syslog over UDP without --insecure-no-auth was accepted")
	}
	if err := startUntilStore(t, args); err != nil {
		t.Errorf("the StatefulSet's own args: %v", err)
	}
}

// Every object of both variants is accepted by the real kube-apiserver
// (server-side dry run, strict field validation), and the ingester's pod
// is admitted into a namespace that enforces the restricted Pod Security
// Standard, as mailtrace-system does.
func TestIngesterValidatesAgainstAPIServer(t *testing.T) {
	env := kubetest.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			r := render(t, v)
			ns := kubetest.Namespace(t, env.Client)
			nsObj := &corev1.Namespace{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
				t.Fatal(err)
			}
			nsObj.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
			if err := env.Client.Update(ctx, nsObj); err != nil {
				t.Fatal(err)
			}

			// A control: the API server refuses a field it does not know.
			bad := r.objs[0].DeepCopy()
			for _, o := range r.objs {
				if o.GetKind() == "StatefulSet" {
					bad = o.DeepCopy()
				}
			}
			bad.SetNamespace(ns)
			if err := unstructured.SetNestedField(bad.Object, int64(1), "spec", "template", "spec", "replicaz"); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Create(ctx, bad, client.DryRunAll, client.FieldValidation("Strict")); err == nil {
				t.Fatal("the API server accepted a StatefulSet with an unknown field: the dry run validates nothing")
			}
			for _, o := range r.objs {
				o := o.DeepCopy()
				o.SetNamespace(ns)
				if err := env.Client.Create(ctx, o, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
					b, _ := yaml.Marshal(o.Object)
					t.Errorf("%s %s refused by the API server: %v\n%s", o.GetKind(), o.GetName(), err, b)
				}
			}

			// The pods: their ServiceAccount must exist for admission.
			sa := r.sa.DeepCopy()
			sa.Namespace = ns
			if err := env.Client.Create(ctx, sa); err != nil {
				t.Fatal(err)
			}
			pod := func(mutate func(*corev1.PodSpec)) *corev1.Pod {
				p := &corev1.Pod{ObjectMeta: *r.sts.Spec.Template.ObjectMeta.DeepCopy(), Spec: *r.sts.Spec.Template.Spec.DeepCopy()}
				p.Namespace, p.Name = ns, fmt.Sprintf("ingester-%d", time.Now().UnixNano())
				// the volumes the StatefulSet controller adds for its claims
				for _, c := range r.sts.Spec.VolumeClaimTemplates {
					p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name + "-" + p.Name}}})
				}
				if mutate != nil {
					mutate(&p.Spec)
				}
				return p
			}
			// A control: the namespace does enforce the restricted standard.
			priv := pod(func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil })
			if err := env.Client.Create(ctx, priv, client.DryRunAll); err == nil {
				t.Fatal("a pod allowing privilege escalation was admitted: Pod Security admission is not enforcing, the check below checks nothing")
			}
			if err := env.Client.Create(ctx, pod(nil), client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Errorf("the ingester's pod is refused in a restricted namespace: %v", err)
			}
		})
	}
}
