package messagetrace

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

func isSucceeded(mt *v1alpha1.MessageTrace) bool {
	c := mt.Condition(v1alpha1.ConditionSucceeded)
	return c != nil && c.Status == metav1.ConditionTrue
}

func mustSucceed(t *testing.T, c client.Client, mt *v1alpha1.MessageTrace) *v1alpha1.MessageTrace {
	t.Helper()
	got := waitUntil(t, c, mt, "finished", isFinished)
	requireCondition(t, got, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
	if got.Status.Report == nil || got.Status.Report.Phase != v1alpha1.ReportPhaseCompleted {
		t.Fatalf("%s: report %+v, want a completed one", got.Name, got.Status.Report)
	}
	return got
}

// TestReportsEndToEnd: long, gzip, detailed and over-budget traces over a
// seeded PostgreSQL store end Succeeded with a report in MinIO whose CSV,
// downloaded back and parsed, equals the store's answer row for row.
func TestReportsEndToEnd(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	st := seededPostgres(t)
	_, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	createReportStore(t, env.Client, ns, "reports", bucket, ak, sk)
	startReportManager(t, env, ns, st, reportOpts(), nil, nil)

	s30, e30 := benchRange(30)
	s5, e5 := benchRange(5)
	onlyD07 := []v1alpha1.AddressPattern{"*@d07.example"}
	long := create(t, env.Client, ns, "thirty-days", v1alpha1.MessageTraceSpec{StartTime: s30, EndTime: e30, ResultLimit: 20,
		Report: &v1alpha1.ReportSpec{StoreName: "reports"}})
	gz := create(t, env.Client, ns, "thirty-days-gzip", v1alpha1.MessageTraceSpec{StartTime: s30, EndTime: e30,
		Report: &v1alpha1.ReportSpec{StoreName: "reports", Gzip: true}})
	detailed := create(t, env.Client, ns, "detailed-d07", v1alpha1.MessageTraceSpec{StartTime: s30, EndTime: e30, SenderAddresses: onlyD07,
		Report: &v1alpha1.ReportSpec{StoreName: "reports", Type: v1alpha1.ReportDetailed, Gzip: true}})
	over := create(t, env.Client, ns, "five-days-over-budget", v1alpha1.MessageTraceSpec{StartTime: s5, EndTime: e5, ResultLimit: 25,
		Report: &v1alpha1.ReportSpec{StoreName: "reports"}})
	fits := create(t, env.Client, ns, "five-days-fits", v1alpha1.MessageTraceSpec{StartTime: s5, EndTime: e5,
		MessageTraceID: "b00000001", Report: &v1alpha1.ReportSpec{StoreName: "reports"}})

	q30 := mailflow.Query{Start: s30.Time, End: e30.Time}
	want30 := allRows(t, st, q30)
	if len(want30) < 10_000 {
		t.Fatalf("the seed gives only %d rows over 30 days", len(want30))
	}

	t.Run("thirty-days", func(t *testing.T) {
		mt := mustSucceed(t, env.Client, long)
		rep := mt.Status.Report
		if rep.Store != "reports" || rep.Bucket != bucket || rep.Key != report.Key("reports", ns, mt.Name, string(mt.UID), false) {
			t.Errorf("report reference %+v", rep)
		}
		if rep.Rows != int64(len(want30)) || mt.Status.TotalMatches != int64(len(want30)) || rep.ContentType != report.ContentType || rep.ContentEncoding != "" {
			t.Errorf("report %+v, total %d; want %d rows", rep, mt.Status.TotalMatches, len(want30))
		}
		// Status keeps the newest rows, truncated, plus the counts.
		if mt.Status.ReturnedRows != 20 || !mt.Status.Truncated || mt.Status.Counts == nil || mt.Status.Counts.Delivered == 0 {
			t.Errorf("status rows %d truncated %v counts %+v", mt.Status.ReturnedRows, mt.Status.Truncated, mt.Status.Counts)
		}
		if len(mt.Status.Rows) > 0 && mt.Status.Rows[0].MessageTraceID != want30[0].MessageTraceID {
			t.Errorf("first status row %s, store's newest %s", mt.Status.Rows[0].MessageTraceID, want30[0].MessageTraceID)
		}
		requireSummaryEqual(t, parseCSV(t, download(t, bucket, rep)), want30)
		info, err := miniotest.Client(t).StatObject(testCtx(t), bucket, rep.Key, minioStatOpts())
		if err != nil {
			t.Fatal(err)
		}
		if info.UserMetadata["Mailtrace-Uid"] != string(mt.UID) || info.UserMetadata["Mailtrace-Namespace"] != ns {
			t.Errorf("object metadata %v", info.UserMetadata)
		}
		waitForEvents(t, env.Client, mt, "ReportUploaded", "Succeeded")
	})
	t.Run("gzip", func(t *testing.T) {
		mt := mustSucceed(t, env.Client, gz)
		if mt.Status.Report.ContentEncoding != "gzip" || mt.Status.Report.Key != report.Key("reports", ns, mt.Name, string(mt.UID), true) {
			t.Errorf("report %+v", mt.Status.Report)
		}
		requireSummaryEqual(t, parseCSV(t, download(t, bucket, mt.Status.Report)), want30)
	})
	t.Run("detailed", func(t *testing.T) {
		mt := mustSucceed(t, env.Client, detailed)
		rows := allRows(t, st, mailflow.Query{Start: s30.Time, End: e30.Time, Senders: []string{"*@d07.example"}})
		recs := parseCSV(t, download(t, bucket, mt.Status.Report))
		if len(recs) == 0 || len(recs[0]) != len(report.DetailedColumns) {
			t.Fatalf("detailed header %v", recs[:min(1, len(recs))])
		}
		// One row per event of each (message, recipient), in the store's order.
		i := 1
		for _, r := range rows {
			evs, err := st.Events(testCtx(t), r.MessageTraceID, r.Recipient)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if i >= len(recs) {
					t.Fatalf("the report ends at row %d; the store has more events", i)
				}
				got := recs[i]
				if got[7] != r.MessageTraceID || got[2] != r.Recipient || got[13] != string(e.Type) || got[12] != e.Time.UTC().Format(time.RFC3339Nano) {
					t.Fatalf("row %d: %q; want %s %s %s at %s", i, got, r.MessageTraceID, r.Recipient, e.Type, e.Time.UTC().Format(time.RFC3339Nano))
				}
				i++
			}
		}
		if i != len(recs) || mt.Status.Report.Rows != int64(i-1) {
			t.Errorf("report of %d rows (status %d), the store's events %d", len(recs)-1, mt.Status.Report.Rows, i-1)
		}
	})
	t.Run("five-days-over-the-row-budget", func(t *testing.T) {
		mt := mustSucceed(t, env.Client, over)
		want := allRows(t, st, mailflow.Query{Start: s5.Time, End: e5.Time})
		if mt.Status.ReturnedRows != 25 || !mt.Status.Truncated || mt.Status.TotalMatches != int64(len(want)) {
			t.Errorf("status: %d rows shown of %d (truncated %v); the store has %d", mt.Status.ReturnedRows, mt.Status.TotalMatches, mt.Status.Truncated, len(want))
		}
		requireSummaryEqual(t, parseCSV(t, download(t, bucket, mt.Status.Report)), want)
	})
	t.Run("five-days-that-fit-get-no-report", func(t *testing.T) {
		mt := waitUntil(t, env.Client, fits, "finished", isFinished)
		requireCondition(t, mt, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
		if mt.Status.Report != nil || mt.Status.Truncated {
			t.Errorf("a trace that fits in status got report %+v", mt.Status.Report)
		}
	})
}

// TestReportLifecycle: ttlSecondsAfterFinished deletes a finished trace, and
// the Delete policy's finalizer deletes its report object; a trace whose
// ReportStore is gone is still deleted (the finalizer gives up, with an Event).
func TestReportLifecycle(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	st := seededPostgres(t)
	_, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	createReportStore(t, env.Client, ns, "reports", bucket, ak, sk)
	startReportManager(t, env, ns, st, reportOpts(), nil, nil)
	s5, e5 := benchRange(2)

	ttl := create(t, env.Client, ns, "ttl-and-delete", v1alpha1.MessageTraceSpec{StartTime: s5, EndTime: e5, TTLSecondsAfterFinished: ptr.To[int32](2),
		Report: &v1alpha1.ReportSpec{StoreName: "reports", Always: true, DeletionPolicy: v1alpha1.ReportDelete}})
	mt := mustSucceed(t, env.Client, ttl)
	if objs, _ := objectsIn(t, bucket); len(objs) != 1 {
		t.Fatalf("objects after the export: %v", objs)
	}
	kubetest.Eventually(t, waitFor, 200*time.Millisecond, func() (bool, string) {
		err := env.Client.Get(testCtx(t), client.ObjectKeyFromObject(mt), &v1alpha1.MessageTrace{})
		return apierrors.IsNotFound(err), "the trace still exists after its TTL"
	})
	if objs, _ := objectsIn(t, bucket); len(objs) != 0 {
		t.Errorf("the report outlived its trace (deletionPolicy Delete): %v", objs)
	}

	// The ReportStore is deleted: deleting the trace does not hang.
	orphan := create(t, env.Client, ns, "store-gone", v1alpha1.MessageTraceSpec{StartTime: s5, EndTime: e5,
		Report: &v1alpha1.ReportSpec{StoreName: "reports", Always: true, DeletionPolicy: v1alpha1.ReportDelete}})
	mustSucceed(t, env.Client, orphan)
	if err := env.Client.Delete(testCtx(t), &v1alpha1.ReportStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reports"}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(testCtx(t), orphan); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, waitFor, 200*time.Millisecond, func() (bool, string) {
		err := env.Client.Get(testCtx(t), client.ObjectKeyFromObject(orphan), &v1alpha1.MessageTrace{})
		return apierrors.IsNotFound(err), "the trace is held by its finalizer although its ReportStore is gone"
	})
	if objs, _ := objectsIn(t, bucket); len(objs) != 1 {
		t.Errorf("objects %v: the report of a trace whose store is gone is left as it is", objs)
	}
}

// TestReportWrongCredentials: a ReportStore whose Secret has a wrong key is
// not Available (AccessDenied), its traces wait with that reason and never
// start an upload meanwhile; once the Secret is fixed they complete.
func TestReportWrongCredentials(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	st := seededPostgres(t)
	_, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	rs := createReportStore(t, env.Client, ns, "reports", bucket, ak, "not-the-secret")
	var ops opCounts
	startReportManager(t, env, ns, st, reportOpts(), nil, &ops)

	got := &v1alpha1.ReportStore{}
	kubetest.Eventually(t, waitFor, 100*time.Millisecond, func() (bool, string) {
		if err := env.Client.Get(testCtx(t), client.ObjectKeyFromObject(rs), got); err != nil {
			return false, err.Error()
		}
		c := got.Condition(v1alpha1.ConditionAvailable)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == string(v1alpha1.ReasonAccessDenied), "ReportStore is not AccessDenied yet"
	})
	s30, e30 := benchRange(30)
	mt := create(t, env.Client, ns, "denied", v1alpha1.MessageTraceSpec{StartTime: s30, EndTime: e30, Report: &v1alpha1.ReportSpec{StoreName: "reports"}})
	w := waitUntil(t, env.Client, mt, "waiting with AccessDenied", reasonIs(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied))
	if w.IsFinished() || w.Status.Phase != v1alpha1.PhaseRunning && w.Status.Phase != v1alpha1.PhasePending {
		t.Errorf("phase %s", w.Status.Phase)
	}
	// Several store rechecks later, still no upload was attempted: no storm.
	before := ops.checks.Load()
	kubetest.Eventually(t, waitFor, 200*time.Millisecond, func() (bool, string) {
		return ops.checks.Load() >= before+3, "the ReportStore was not rechecked"
	})
	if n := ops.uploads.Load(); n != 0 {
		t.Errorf("%d uploads with credentials the store denies", n)
	}
	waitForEvents(t, env.Client, mt, string(v1alpha1.ReasonAccessDenied))

	// Fix the Secret: the store becomes Available on its next check, and the trace completes.
	sec := secretOf(t, env, rs)
	sec.Data[v1alpha1.SecretAccessKeyKey] = []byte(sk)
	if err := env.Client.Update(testCtx(t), sec); err != nil {
		t.Fatal(err)
	}
	done := mustSucceed(t, env.Client, mt)
	if done.Status.Report.Attempts != 1 || ops.uploads.Load() != 1 {
		t.Errorf("%d attempts, %d uploads: want one of each", done.Status.Report.Attempts, ops.uploads.Load())
	}
}

// TestReportSurvivesObjectStoreOutage: MinIO stops in the middle of an
// upload (after its first part); the trace retries and completes once MinIO
// is back, with one object in the bucket and no incomplete upload left.
func TestReportSurvivesObjectStoreOutage(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	pg := seededPostgres(t)
	_, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	createReportStore(t, env.Client, ns, "reports", bucket, ak, sk)
	// Stop MinIO from inside the export, once more than one part's worth of
	// rows (~7 MiB) has been read: deterministic, whatever the speed.
	var stopped atomic.Bool
	st := &hookStore{Store: pg, after: 35_000, hook: func() {
		if stopped.CompareAndSwap(false, true) {
			miniotest.Stop(t)
		}
	}}
	startReportManager(t, env, ns, st, reportOpts(), nil, nil)
	s90, e90 := benchRange(60)
	mt := create(t, env.Client, ns, "outage", v1alpha1.MessageTraceSpec{StartTime: s90, EndTime: e90, Report: &v1alpha1.ReportSpec{StoreName: "reports"}})

	w := waitUntil(t, env.Client, mt, "retrying after StoreUnreachable", func(m *v1alpha1.MessageTrace) bool {
		return m.Status.Report != nil && m.Status.Report.LastError == string(v1alpha1.ReasonStoreUnreachable)
	})
	if !stopped.Load() {
		t.Fatal("the export failed before MinIO was stopped")
	}
	t.Logf("after the outage: %+v", w.Status.Report)
	miniotest.Start(t)
	done := mustSucceed(t, env.Client, mt)
	if done.Status.Report.Attempts < 2 {
		t.Errorf("%d attempts: the outage should have cost one", done.Status.Report.Attempts)
	}
	want := allRows(t, pg, mailflow.Query{Start: s90.Time, End: e90.Time})
	requireSummaryEqual(t, parseCSV(t, download(t, bucket, done.Status.Report)), want)
	objs, incomplete := objectsIn(t, bucket)
	if len(objs) != 1 || incomplete != 0 {
		t.Errorf("bucket holds %v and %d incomplete uploads; want the report alone", objs, incomplete)
	}
	waitForEvents(t, env.Client, done, string(v1alpha1.ReasonStoreUnreachable), "ReportUploaded")
}

// TestReportSurvivesManagerRestart: the manager stops in the middle of an
// export; a new one finds the trace running with no worker, retries it with
// the same key and completes it.
func TestReportSurvivesManagerRestart(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	pg := seededPostgres(t)
	_, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	createReportStore(t, env.Client, ns, "reports", bucket, ak, sk)
	midway := make(chan struct{})
	var once atomic.Bool
	st := &hookStore{Store: pg, after: 10_000, hook: func() {
		if once.CompareAndSwap(false, true) {
			close(midway)
		}
	}, slow: true}
	first := startReportManager(t, env, ns, st, reportOpts(), nil, nil)
	s30, e30 := benchRange(30)
	mt := create(t, env.Client, ns, "restart", v1alpha1.MessageTraceSpec{StartTime: s30, EndTime: e30, Report: &v1alpha1.ReportSpec{StoreName: "reports", Gzip: true}})
	select {
	case <-midway:
	case <-testCtx(t).Done():
		t.Fatal("the export never got half way")
	}
	first.stop(t)
	running := &v1alpha1.MessageTrace{}
	if err := env.Client.Get(testCtx(t), client.ObjectKeyFromObject(mt), running); err != nil {
		t.Fatal(err)
	}
	if running.IsFinished() || running.Status.Report == nil || running.Status.Report.Phase != v1alpha1.ReportPhaseRunning {
		t.Fatalf("after the stop: finished %v, report %+v", running.IsFinished(), running.Status.Report)
	}
	startReportManager(t, env, ns, pg, reportOpts(), nil, nil)
	done := mustSucceed(t, env.Client, mt)
	if done.Status.Report.Attempts != 2 || done.Status.Report.Key != running.Status.Report.Key {
		t.Errorf("attempts %d key %s; want 2 attempts with the key %s", done.Status.Report.Attempts, done.Status.Report.Key, running.Status.Report.Key)
	}
	requireSummaryEqual(t, parseCSV(t, download(t, bucket, done.Status.Report)), allRows(t, pg, mailflow.Query{Start: s30.Time, End: e30.Time}))
	objs, incomplete := objectsIn(t, bucket)
	if len(objs) != 1 || incomplete != 0 {
		t.Errorf("bucket holds %v and %d incomplete uploads; want the report alone", objs, incomplete)
	}
	waitForEvents(t, env.Client, done, "ExportInterrupted", "ReportUploaded")
}

// TestReportWithoutAStore: a long trace with no ReportStore named and no
// default store waits with a clear reason; naming a missing ReportStore too.
func TestReportWithoutAStore(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	startReportManager(t, env, ns, openSQLite(t), reportOpts(), nil, nil)
	s30, e30 := benchRange(30)
	a := create(t, env.Client, ns, "no-default", v1alpha1.MessageTraceSpec{StartTime: s30, EndTime: e30})
	b := create(t, env.Client, ns, "missing-store", v1alpha1.MessageTraceSpec{StartTime: s30, EndTime: e30, Report: &v1alpha1.ReportSpec{StoreName: "nope"}})
	ga := waitUntil(t, env.Client, a, "waiting", reasonIs(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonNoDefaultReportStore))
	gb := waitUntil(t, env.Client, b, "waiting", reasonIs(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonReportStoreNotFound))
	for _, m := range []*v1alpha1.MessageTrace{ga, gb} {
		if m.Status.Phase != v1alpha1.PhasePending || m.Status.Report != nil {
			t.Errorf("%s: phase %s report %+v", m.Name, m.Status.Phase, m.Status.Report)
		}
	}
}

// hookStore calls hook once `after` rows have been read; slow makes each
// page take a little while, so that an export lasts long enough to interrupt.
type hookStore struct {
	store.Store
	after int64
	hook  func()
	slow  bool
	read  atomic.Int64
}

func (h *hookStore) Trace(ctx context.Context, q mailflow.Query, c mailflow.Cursor, limit int) (mailflow.Page, error) {
	p, err := h.Store.Trace(ctx, q, c, limit)
	if h.read.Add(int64(len(p.Rows))) >= h.after {
		h.hook()
	}
	if h.slow {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return p, err
}

var _ objectstore.Store = countingObjects{}
