package messagetrace

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// exhaustedAttempts is the attempt limit of these tests: low, to keep them short.
const exhaustedAttempts = 2

// TestReportAttemptsExhausted drives a trace's report through its attempt
// limit by the two ways a real operator gets there, and checks that the
// trace ends Failed with ReportAttemptsExhausted, a message saying why and
// what to do, a Warning Event, and nothing left in the bucket: no object
// and no incomplete multipart upload.
func TestReportAttemptsExhausted(t *testing.T) {
	env := kubetest.Get(t)
	opts := reportOpts()
	opts.MaxReportAttempts = exhaustedAttempts

	// Each export is interrupted in the middle of its upload by a manager
	// restart (or a lost leadership): the next manager finds the trace
	// running with no worker, and after the last attempt gives up.
	t.Run("interrupted-by-restarts", func(t *testing.T) {
		ns := kubetest.Namespace(t, env.Client)
		pg := freshPostgres(t)
		bucket := miniotest.Bucket(t)
		def := defaultStoreOn(t, bucket)
		mt := &v1alpha1.MessageTrace{}
		for attempt := int32(1); attempt <= exhaustedAttempts; attempt++ {
			st := &stallingStore{Store: pg, stalled: make(chan struct{})}
			m := startReportManager(t, env, ns, st, opts, def, nil)
			if attempt == 1 {
				s, e := window(30 * day)
				mt = create(t, env.Client, ns, "interrupted", v1alpha1.MessageTraceSpec{StartTime: s, EndTime: e})
			} else {
				// The new manager saw the trace running without a worker.
				waitForEventNote(t, env.Client, mt, "ExportInterrupted", "export attempt 1 was interrupted")
			}
			select {
			case <-st.stalled:
			case <-testCtx(t).Done():
				t.Fatalf("attempt %d never read the trace store", attempt)
			}
			// The upload is in flight: its multipart upload exists in the bucket.
			kubetest.Eventually(t, waitFor, 100*time.Millisecond, func() (bool, string) {
				objs, incomplete := objectsIn(t, bucket)
				return incomplete > 0, "no multipart upload in flight during the export; objects " + strings.Join(objs, ", ")
			})
			running := waitUntil(t, env.Client, mt, "running its attempt", func(m *v1alpha1.MessageTrace) bool {
				r := m.Status.Report
				return r != nil && r.Phase == v1alpha1.ReportPhaseRunning && r.Attempts == attempt
			})
			if running.IsFinished() {
				t.Fatalf("attempt %d: finished while running: %+v", attempt, running.Status)
			}
			m.stop(t)
		}
		// The last manager: no export runs any more.
		startReportManager(t, env, ns, pg, opts, def, nil)
		got := waitUntil(t, env.Client, mt, "finished", isFinished)
		c := requireExhausted(t, got)
		for _, want := range []string{"failed 2 times", "last: Interrupted", "create the trace again"} {
			if !strings.Contains(c.Message, want) {
				t.Errorf("message %q does not say %q", c.Message, want)
			}
		}
		if r := got.Status.Report; r.LastError != "Interrupted" {
			t.Errorf("report lastError %q, want Interrupted", r.LastError)
		}
		waitForEventNote(t, env.Client, got, "ExportInterrupted", "export attempt 2 was interrupted")
		waitForEventNote(t, env.Client, got, "Failed", string(v1alpha1.ReasonReportAttemptsExhausted)+": ")
		requireEmptyBucket(t, bucket)
	})

	// Every attempt fails in a way worth retrying: the operator's default
	// report store is down (MinIO stopped; a default store is used without
	// a check, unlike a ReportStore, which would be not Available and make
	// the trace wait instead).
	t.Run("store-down", func(t *testing.T) {
		ns := kubetest.Namespace(t, env.Client)
		bucket := miniotest.Bucket(t)
		def := defaultStoreOn(t, bucket)
		miniotest.Stop(t)
		t.Cleanup(func() { miniotest.Start(t) })
		startReportManager(t, env, ns, openSQLite(t), opts, def, nil)
		s, e := window(30 * day)
		mt := create(t, env.Client, ns, "store-down", v1alpha1.MessageTraceSpec{StartTime: s, EndTime: e,
			Report: &v1alpha1.ReportSpec{Gzip: true}})

		got := waitUntil(t, env.Client, mt, "finished", isFinished)
		c := requireExhausted(t, got)
		for _, want := range []string{"failed 2 times", string(v1alpha1.ReasonStoreUnreachable)} {
			if !strings.Contains(c.Message, want) {
				t.Errorf("message %q does not say %q", c.Message, want)
			}
		}
		if r := got.Status.Report; r.LastError != string(v1alpha1.ReasonStoreUnreachable) {
			t.Errorf("report lastError %q, want %s", r.LastError, v1alpha1.ReasonStoreUnreachable)
		}
		// Not asserted: the Warning StoreUnreachable Event of the first
		// attempt. An attempt that fails within milliseconds can be finished
		// before the informer cache holds the status that started it; the
		// reconcile then drops the finished job (export: "the status write
		// ... failed: start afresh") and the next one counts the attempt as
		// interrupted (ExportInterrupted) instead. The outcome is the same.
		waitForEventNote(t, env.Client, got, "Failed", string(v1alpha1.ReasonReportAttemptsExhausted)+": the report failed 2 times")
		miniotest.Start(t)
		requireEmptyBucket(t, bucket)
	})
}

// requireExhausted checks the end state of a trace whose report ran out of
// attempts, and returns its Failed condition.
func requireExhausted(t *testing.T, mt *v1alpha1.MessageTrace) *metav1.Condition {
	t.Helper()
	c := requireCondition(t, mt, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonReportAttemptsExhausted)
	requireCondition(t, mt, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonReportAttemptsExhausted)
	if mt.Status.Phase != v1alpha1.PhaseFailed || mt.Status.CompletionTime == nil {
		t.Errorf("phase %s, completionTime %v; want Failed with a completion time", mt.Status.Phase, mt.Status.CompletionTime)
	}
	r := mt.Status.Report
	if r == nil || r.Phase != v1alpha1.ReportPhaseFailed || r.Attempts != exhaustedAttempts {
		t.Fatalf("report %+v; want Failed after %d attempts", r, exhaustedAttempts)
	}
	return c
}

// requireEmptyBucket: no object (no report, partial or not) and no
// incomplete multipart upload holding parts.
func requireEmptyBucket(t *testing.T, bucket string) {
	t.Helper()
	objs, incomplete := objectsIn(t, bucket)
	if len(objs) != 0 || incomplete != 0 {
		t.Errorf("bucket %s holds objects %v and %d incomplete uploads; want nothing", bucket, objs, incomplete)
	}
}

// waitForEventNote waits for a Warning Event on the trace with the reason
// whose note contains note.
func waitForEventNote(t *testing.T, c client.Client, mt *v1alpha1.MessageTrace, reason, note string) {
	t.Helper()
	kubetest.Eventually(t, waitFor, 100*time.Millisecond, func() (bool, string) {
		var list eventsv1.EventList
		if err := c.List(testCtx(t), &list, client.InNamespace(mt.Namespace)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Kind != "MessageTrace" || e.Regarding.Name != mt.Name {
				continue
			}
			if e.Reason == reason && e.Type == eventWarning && strings.Contains(e.Note, note) {
				return true, ""
			}
			seen = append(seen, e.Type+" "+e.Reason+": "+e.Note)
		}
		return false, "no Warning " + reason + " Event saying " + note + " on " + mt.Name + "; its Events: " + strings.Join(seen, " | ")
	})
}

// window is the last d, as absolute times: longer than the status range
// limit, so the trace is answered by a report.
func window(d time.Duration) (start, end *metav1.Time) {
	e := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	s := metav1.NewTime(e.Add(-d))
	return &s, &e
}

// freshPostgres is an empty database on the test PostgreSQL with the seeded
// mail flow.
func freshPostgres(t *testing.T) store.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{})
	if err != nil {
		t.Fatalf("opening PostgreSQL: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	seedStore(t, st, day0())
	return st
}

// defaultStoreOn is the operator's default report store on the test MinIO
// and bucket, as the manager's --default-report-store-* flags make it.
func defaultStoreOn(t *testing.T, bucket string) *DefaultReportStore {
	t.Helper()
	ep, ak, sk := miniotest.Server(t)
	obj, err := objectstore.New(objectstore.Config{Endpoint: ep, Bucket: bucket, Prefix: "default", Insecure: true,
		AccessKey: ak, SecretKey: sk, PartSize: objectstore.MinPartSize, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &DefaultReportStore{Store: obj, Endpoint: ep, Bucket: bucket, Prefix: "default"}
}

// stallingStore is the trace store of a manager that goes away in the
// middle of an export: the export's first read never answers until the
// manager stops (which cancels it), so the upload is in flight when it does.
type stallingStore struct {
	store.Store
	stalled chan struct{}
	once    sync.Once
}

func (s *stallingStore) Trace(ctx context.Context, _ mailflow.Query, _ mailflow.Cursor, _ int) (mailflow.Page, error) {
	s.once.Do(func() { close(s.stalled) })
	<-ctx.Done()
	return mailflow.Page{}, ctx.Err()
}
