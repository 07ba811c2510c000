package plugin

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

func testPlugin() *plugin {
	var out, errOut bytes.Buffer
	return &plugin{streams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		poll: 10 * time.Millisecond, blockedGrace: 200 * time.Millisecond}
}

func traceWith(name string, phase v1alpha1.Phase, conds ...metav1.Condition) *v1alpha1.MessageTrace {
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	mt.Status.Phase, mt.Status.Conditions = phase, conds
	return mt
}

func cond(t v1alpha1.ConditionType, s metav1.ConditionStatus, reason v1alpha1.Reason, msg string) metav1.Condition {
	return metav1.Condition{Type: string(t), Status: s, Reason: string(reason), Message: msg, LastTransitionTime: metav1.Now()}
}

// TestWaitStopsOnABlockedTrace: a trace that cannot progress until someone
// acts (no default report store, a ReportStore that does not exist) ends
// the wait at once with its reason and message; one whose cause may clear by
// itself (a ReportStore not checked yet) after the grace; never the whole
// timeout.
func TestWaitStopsOnABlockedTrace(t *testing.T) {
	for _, tc := range []struct {
		reason v1alpha1.Reason
		msg    string
	}{
		{v1alpha1.ReasonNoDefaultReportStore, "the trace needs a CSV report, it names no ReportStore"},
		{v1alpha1.ReasonReportStoreNotFound, "waiting for ReportStore ns/x, which does not exist"},
		{v1alpha1.ReasonReportStoreUnavailable, "waiting for ReportStore x to be Available: it has not been checked yet"},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			mt := traceWith("t", v1alpha1.PhasePending, cond(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, tc.reason, tc.msg))
			c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(mt).Build()
			start := time.Now()
			_, err := testPlugin().waitTrace(context.Background(), c, client.ObjectKeyFromObject(mt), time.Minute)
			if err == nil || !strings.Contains(err.Error(), string(tc.reason)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("waitTrace: %v; want the reason %s and its message", err, tc.reason)
			}
			if strings.Contains(err.Error(), "not done after") {
				t.Errorf("waited for the timeout: %v", err)
			}
			if el := time.Since(start); el > 30*time.Second {
				t.Errorf("waited %v", el) // the timeout is a minute: the wait did not stop
			}
		})
	}
}

// TestWaitGoesOnWhileATraceRuns: a trace exporting its report is not
// blocked; at the timeout the error says where the trace stood, not what the
// request the deadline interrupted said (the client's rate limiter).
func TestWaitGoesOnWhileATraceRuns(t *testing.T) {
	mt := traceWith("t", v1alpha1.PhaseRunning, cond(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonExporting, "writing the CSV report"))
	gets := 0
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(mt).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("a request without a deadline")
			}
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	_, err := testPlugin().waitTrace(context.Background(), c, client.ObjectKeyFromObject(mt), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not done after 300ms") || !strings.Contains(err.Error(), "Exporting: writing the CSV report") {
		t.Fatalf("waitTrace: %v", err)
	}
	if gets < 2 {
		t.Errorf("%d polls", gets)
	}
}

// TestWaitReturnsAFinishedTrace, and a failed one as an error with its reason.
func TestWaitReturnsAFinishedTrace(t *testing.T) {
	ok := traceWith("ok", v1alpha1.PhaseSucceeded, cond(v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, "done"))
	bad := traceWith("bad", v1alpha1.PhaseFailed, cond(v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonStartInFuture, "the range starts in the future"),
		cond(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonStartInFuture, "the range starts in the future"))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(ok, bad).Build()
	if got, err := testPlugin().waitTrace(context.Background(), c, client.ObjectKeyFromObject(ok), time.Minute); err != nil || got.Name != "ok" {
		t.Errorf("finished trace: %v, %v", got, err)
	}
	if _, err := testPlugin().waitTrace(context.Background(), c, client.ObjectKeyFromObject(bad), time.Minute); err == nil || !strings.Contains(err.Error(), "StartInFuture: the range starts in the future") {
		t.Errorf("failed trace: %v", err)
	}
	if _, err := testPlugin().waitTrace(context.Background(), c, client.ObjectKey{Namespace: "ns", Name: "gone"}, time.Minute); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing trace: %v", err)
	}
}

// TestFetchKeepsAGzipReportCompressed: a report stored gzip-compressed
// (Content-Encoding gzip) is written as stored, so its SHA-256 matches the
// report's, rather than inflated by Go's transport.
func TestFetchKeepsAGzipReportCompressed(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("Received,Sender\n2026-01-01T00:00:00Z,a@example.com\n"))
	_ = zw.Close()
	body := gz.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Encoding", "gzip") // as S3 and MinIO serve it
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	sum := sha256.Sum256(body)
	want := hex.EncodeToString(sum[:])
	file := filepath.Join(t.TempDir(), "r.csv.gz")
	n, got, err := fetch(context.Background(), srv.URL, file, want)
	if err != nil || got != want || n != int64(len(body)) {
		t.Fatalf("fetch: %d bytes, sha256 %s, %v; want %d bytes, %s", n, got, err, len(body), want)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, body) {
		t.Errorf("the file holds %d bytes (%v), not the %d compressed bytes", len(b), err, len(body))
	}
}

// TestFetchWritesNothingOnAChecksumMismatch: the file appears only when the
// download's SHA-256 is the report's.
func TestFetchWritesNothingOnAChecksumMismatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("tampered")) }))
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "r.csv")
	_, _, err := fetch(context.Background(), srv.URL, file, strings.Repeat("0", 64))
	if err == nil || !strings.Contains(err.Error(), "was not written") {
		t.Fatalf("fetch: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %d files behind, such as %s", len(ents), ents[0].Name())
	}
}
