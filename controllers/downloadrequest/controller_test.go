package downloadrequest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

func TestMain(m *testing.M) {
	code := kubetest.Run(m, nil)
	miniotest.Shutdown()
	os.Exit(code)
}

const waitFor = 60 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func startManager(t *testing.T, env *kubetest.Env, ns string, r *Reconciler) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
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

// finishedTrace creates a ReportStore on MinIO (prefix "reports"), puts a
// report object in it and a MessageTrace whose status references it, as
// the MessageTrace controller leaves a finished trace.
func finishedTrace(t *testing.T, c client.Client, ns, name string, body []byte) *v1alpha1.MessageTrace {
	t.Helper()
	ctx := testCtx(t)
	ep, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-credentials"},
		StringData: map[string]string{v1alpha1.AccessKeyIDKey: ak, v1alpha1.SecretAccessKeyKey: sk}}
	rs := &v1alpha1.ReportStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-store"}, Spec: v1alpha1.ReportStoreSpec{
		Endpoint: ep, Bucket: bucket, Prefix: "reports", Insecure: true, CredentialsSecretRef: v1alpha1.SecretReference{Name: sec.Name}}}
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.MessageTraceSpec{Report: &v1alpha1.ReportSpec{StoreName: rs.Name, Always: true}}}
	for _, o := range []client.Object{sec, rs, mt} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	key := fmt.Sprintf("reports/%s/%s/%s/messagetrace.csv", ns, name, mt.UID)
	if _, err := miniotest.Client(t).PutObject(ctx, bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "text/csv"}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	now := metav1.Now()
	orig := mt.DeepCopy()
	mt.Status.Conditions = []metav1.Condition{{Type: string(v1alpha1.ConditionSucceeded), Status: metav1.ConditionTrue, Reason: "Completed", Message: "done", LastTransitionTime: now}}
	mt.Status.Report = &v1alpha1.ReportStatus{Phase: v1alpha1.ReportPhaseCompleted, Store: rs.Name, Endpoint: ep, Bucket: bucket, Key: key,
		Rows: 2, Bytes: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), ContentType: "text/csv"}
	if err := c.Status().Patch(ctx, mt, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	return mt
}

func createRequest(t *testing.T, c client.Client, ns, name, trace string, ttl *metav1.Duration) *v1alpha1.DownloadRequest {
	t.Helper()
	dr := &v1alpha1.DownloadRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.DownloadRequestSpec{MessageTraceName: trace, TTL: ttl}}
	if err := c.Create(testCtx(t), dr); err != nil {
		t.Fatalf("creating DownloadRequest %s: %v", name, err)
	}
	return dr
}

func waitPhase(t *testing.T, c client.Client, dr *v1alpha1.DownloadRequest, phase v1alpha1.DownloadRequestPhase) *v1alpha1.DownloadRequest {
	t.Helper()
	got := &v1alpha1.DownloadRequest{}
	kubetest.Eventually(t, waitFor, 100*time.Millisecond, func() (bool, string) {
		if err := c.Get(testCtx(t), client.ObjectKeyFromObject(dr), got); err != nil {
			return false, err.Error()
		}
		return got.Status.Phase == phase, fmt.Sprintf("%s is not %s: %+v", dr.Name, phase, got.Status)
	})
	return got
}

// TestDownloadRequest: a finished trace's report downloads through the URL
// in the request's status with plain net/http, never through the trace; an
// unknown trace, a trace without a report and a too-long ttl say why; an
// expired request loses its URL and is deleted.
func TestDownloadRequest(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	startManager(t, env, ns, &Reconciler{Keep: 3 * time.Second})
	body := []byte("received,sender,recipient\n2026-01-01T00:00:00Z,a@example.com,b@example.org\n2026-01-01T00:01:00Z,a@example.com,c@example.org\n")
	mt := finishedTrace(t, env.Client, ns, "weekly", body)

	dr := waitPhase(t, env.Client, createRequest(t, env.Client, ns, "get-weekly", "weekly", nil), v1alpha1.DownloadReady)
	c := dr.Condition(v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonURLIssued) {
		t.Fatalf("Ready condition %+v", c)
	}
	if dr.Status.Expiration == nil || dr.Status.Expiration.Sub(c.LastTransitionTime.Time) != v1alpha1.DefaultDownloadTTL {
		t.Errorf("expiration %v, want the default ttl after issue (%v)", dr.Status.Expiration, c.LastTransitionTime)
	}
	if dr.Status.Report == nil || dr.Status.Report.SHA256 != mt.Status.Report.SHA256 || dr.Status.Report.Rows != 2 {
		t.Errorf("report %+v", dr.Status.Report)
	}
	resp, err := http.Get(dr.Status.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET the URL: %d %v, %q", resp.StatusCode, err, got)
	}
	cur := &v1alpha1.MessageTrace{}
	if err := env.Client.Get(testCtx(t), client.ObjectKeyFromObject(mt), cur); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprintf("%+v", cur), "X-Amz-Signature") {
		t.Error("the MessageTrace holds a presigned URL")
	}

	unknown := waitPhase(t, env.Client, createRequest(t, env.Client, ns, "get-nothing", "no-such-trace", nil), v1alpha1.DownloadFailed)
	if c := unknown.Condition(v1alpha1.ConditionReady); c == nil || c.Reason != string(v1alpha1.ReasonMessageTraceNotFound) ||
		!strings.Contains(c.Message, "no-such-trace") || unknown.Status.DownloadURL != "" {
		t.Errorf("unknown trace: %+v", unknown.Status)
	}

	noReport := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "status-only"}}
	if err := env.Client.Create(testCtx(t), noReport); err != nil {
		t.Fatal(err)
	}
	orig := noReport.DeepCopy()
	noReport.Status.Conditions = []metav1.Condition{{Type: string(v1alpha1.ConditionSucceeded), Status: metav1.ConditionTrue, Reason: "Completed", Message: "done", LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Patch(testCtx(t), noReport, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	nr := waitPhase(t, env.Client, createRequest(t, env.Client, ns, "get-status-only", "status-only", nil), v1alpha1.DownloadFailed)
	if c := nr.Condition(v1alpha1.ConditionReady); c == nil || c.Reason != string(v1alpha1.ReasonNoReport) {
		t.Errorf("trace without report: %+v", nr.Status)
	}

	tooLong := &v1alpha1.DownloadRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "too-long"},
		Spec: v1alpha1.DownloadRequestSpec{MessageTraceName: "weekly", TTL: &metav1.Duration{Duration: 2 * time.Hour}}}
	if err := env.Client.Create(testCtx(t), tooLong); err == nil || !strings.Contains(err.Error(), "between 1s and 1h") {
		t.Errorf("ttl of 2h: %v", err)
	}

	// A one-second URL expires, loses its URL, and the request is deleted
	// Keep (3s here) later.
	short := createRequest(t, env.Client, ns, "short", "weekly", &metav1.Duration{Duration: time.Second})
	waitPhase(t, env.Client, short, v1alpha1.DownloadExpired)
	kubetest.Eventually(t, waitFor, 200*time.Millisecond, func() (bool, string) {
		err := env.Client.Get(testCtx(t), client.ObjectKeyFromObject(short), &v1alpha1.DownloadRequest{})
		return apierrors.IsNotFound(err), fmt.Sprintf("expired request still there: %v", err)
	})
}
