package reportstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

func TestMain(m *testing.M) {
	code := kubetest.Run(m, nil)
	miniotest.Shutdown()
	os.Exit(code)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func startManager(t *testing.T, env *kubetest.Env, ns string) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Options: Options{CheckInterval: time.Second, RetryInterval: time.Second}}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

func waitAvailable(t *testing.T, c client.Client, ns, name string, s metav1.ConditionStatus, reason v1alpha1.Reason) *v1alpha1.ReportStore {
	t.Helper()
	rs := &v1alpha1.ReportStore{}
	kubetest.Eventually(t, time.Minute, 100*time.Millisecond, func() (bool, string) {
		if err := c.Get(ctxFor(t), client.ObjectKey{Namespace: ns, Name: name}, rs); err != nil {
			return false, err.Error()
		}
		cnd := rs.Condition(v1alpha1.ConditionAvailable)
		return cnd != nil && cnd.Status == s && cnd.Reason == string(reason) && cnd.ObservedGeneration == rs.Generation,
			fmt.Sprintf("%s: Available is %+v, want %s/%s", name, cnd, s, reason)
	})
	return rs
}

// TestReportStoreAvailable checks stores against a real MinIO: a good one,
// a missing bucket, wrong credentials, a missing Secret, and an HTTPS server
// whose CA comes from a ConfigMap.
func TestReportStoreAvailable(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	ep, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	tlsEP, caPEM := miniotest.TLSServer(t)
	tlsBucket := miniotest.TLSBucket(t)
	c := env.Client
	mk := func(obj client.Object) {
		t.Helper()
		obj.SetNamespace(ns)
		if err := c.Create(ctxFor(t), obj); err != nil {
			t.Fatal(err)
		}
	}
	mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "good"}, StringData: map[string]string{"accessKeyID": ak, "secretAccessKey": sk}})
	mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, StringData: map[string]string{"accessKeyID": ak, "secretAccessKey": "wrong-secret"}})
	mk(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ca"}, Data: map[string]string{"ca.crt": string(caPEM)}})
	rs := func(name, endpoint, bucket, secret string, insecure bool, ca *v1alpha1.KeyReference) {
		mk(&v1alpha1.ReportStore{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ReportStoreSpec{
			Endpoint: endpoint, Bucket: bucket, Insecure: insecure, Prefix: "p", CABundle: ca,
			CredentialsSecretRef: v1alpha1.SecretReference{Name: secret}}})
	}
	rs("good", ep, bucket, "good", true, nil)
	rs("no-bucket", ep, "no-such-bucket-here", "good", true, nil)
	rs("denied", ep, bucket, "bad", true, nil)
	rs("no-secret", ep, bucket, "absent", true, nil)
	rs("tls-with-ca", tlsEP, tlsBucket, "good", false, &v1alpha1.KeyReference{ConfigMapName: "ca"})
	rs("tls-without-ca", tlsEP, tlsBucket, "good", false, nil)
	startManager(t, env, ns)

	good := waitAvailable(t, c, ns, "good", metav1.ConditionTrue, v1alpha1.ReasonChecked)
	if good.Status.LastCheckTime == nil {
		t.Error("no lastCheckTime")
	}
	waitAvailable(t, c, ns, "no-bucket", metav1.ConditionFalse, v1alpha1.ReasonBucketMissing)
	denied := waitAvailable(t, c, ns, "denied", metav1.ConditionFalse, v1alpha1.ReasonAccessDenied)
	if m := denied.Condition(v1alpha1.ConditionAvailable).Message; strings.Contains(m, "wrong-secret") {
		t.Errorf("the condition shows the secret: %q", m)
	}
	waitAvailable(t, c, ns, "no-secret", metav1.ConditionFalse, v1alpha1.ReasonCredentialsMissing)
	waitAvailable(t, c, ns, "tls-with-ca", metav1.ConditionTrue, v1alpha1.ReasonChecked)
	waitAvailable(t, c, ns, "tls-without-ca", metav1.ConditionFalse, v1alpha1.ReasonStoreUnreachable)

	// The Secret appears: the next periodic check sees it.
	mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "absent"}, StringData: map[string]string{"accessKeyID": ak, "secretAccessKey": sk}})
	waitAvailable(t, c, ns, "no-secret", metav1.ConditionTrue, v1alpha1.ReasonChecked)
}

// TestReportSamplesApply: the manifests of config/samples/reports pass the
// CRDs' validation (server-side dry run).
func TestReportSamplesApply(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "config", "samples", "reports", "*.yaml"))
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			u.SetNamespace(ns)
			if err := env.Client.Create(ctxFor(t), u, client.DryRunAll); err != nil {
				t.Errorf("%s: %s %s: %v", filepath.Base(f), u.GetKind(), u.GetName(), err)
			}
			n++
		}
	}
	if n < 3 {
		t.Errorf("only %d sample objects in config/samples/reports", n)
	}
}
