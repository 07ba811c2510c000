package messagetrace

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "trace.db"))
	if err != nil {
		t.Fatalf("opening SQLite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func rowKey(r v1alpha1.TraceRow) string {
	return fmt.Sprintf("%s %s rcpt=%q %s from=%q subj=%q id=%q size=%d fromIP=%q toIP=%q %s",
		r.Received.UTC().Format(time.RFC3339), r.MessageTraceID, r.Recipient, r.Status, r.Sender, r.Subject,
		r.MessageID, r.Size, r.FromIP, r.ToIP, r.Direction)
}

func requireRows(t *testing.T, name string, got, want []v1alpha1.TraceRow) {
	t.Helper()
	var g, w []string
	for _, r := range got {
		g = append(g, rowKey(r))
	}
	for _, r := range want {
		w = append(w, rowKey(r))
	}
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("%s: rows\n%s\nwant (newest first)\n%s", name, strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

func abs(ts time.Time) *metav1.Time { t := metav1.NewTime(ts); return &t }

// TestTraceAnswersFromTheStore runs traces with every kind of filter against
// a seeded SQLite store and checks each status against the reference
// semantics: rows newest first, counts, totals, range, and the conditions
// kubectl wait --for=condition=Succeeded looks at.
func TestTraceAnswersFromTheStore(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	d0 := day0()
	st := openSQLite(t)
	seedStore(t, st, d0)
	// A fake clock: the controller's start and completion times are its own.
	now := time.Now().UTC().Truncate(time.Second)
	fake := clocktesting.NewFakePassiveClock(now)
	succeededBefore := metricValue(t, tracesTotal.WithLabelValues("succeeded"))
	durationsBefore, rowsBefore := metricValue(t, traceDuration), metricValue(t, traceRows)
	startManager(t, env, ns, st, fake, Options{})

	all := v1alpha1.MessageTraceSpec{StartTime: abs(d0.Add(-time.Hour)), EndTime: abs(d0.Add(5 * day))}
	cases := []struct {
		name      string
		spec      v1alpha1.MessageTraceSpec
		wantTotal int64 // checked by hand on top of the reference
		truncated bool
	}{
		{"alice-invoices", v1alpha1.MessageTraceSpec{
			StartTime: abs(d0), EndTime: abs(d0.Add(5 * day)),
			SenderAddresses: []v1alpha1.AddressPattern{"ALICE@example.com"}, Direction: "Outbound",
			Subject: &v1alpha1.SubjectFilter{Value: "invoice", Match: "StartsWith"},
		}, 5, false},
		{"everything", all, 15, false},
		{"last-48h-default-window", v1alpha1.MessageTraceSpec{}, -1, false},
		{"window-72h", v1alpha1.MessageTraceSpec{Window: &metav1.Duration{Duration: 72 * time.Hour}}, -1, false},
		{"start-only", v1alpha1.MessageTraceSpec{StartTime: abs(d0.Add(3 * day))}, -1, false},
		{"failed-or-pending-to-other-orgs", v1alpha1.MessageTraceSpec{
			StartTime: all.StartTime, EndTime: all.EndTime,
			RecipientAddresses: []v1alpha1.AddressPattern{"*@*.org", "*@example.net"},
			DeliveryStatuses:   []v1alpha1.DeliveryStatus{"Failed", "Pending"},
		}, 3, false},
		{"inbound-from-partner-cidr", v1alpha1.MessageTraceSpec{
			StartTime: all.StartTime, EndTime: all.EndTime, Direction: "Inbound", FromIP: "198.51.100.0/24",
		}, 3, false},
		{"group-expansion", v1alpha1.MessageTraceSpec{
			StartTime: all.StartTime, EndTime: all.EndTime, MessageID: "<m05@mail.test>",
		}, 3, false},
		{"one-message-by-trace-id", v1alpha1.MessageTraceSpec{
			StartTime: all.StartTime, EndTime: all.EndTime, MessageTraceID: "m11", ToIP: "192.0.2.12",
		}, 1, false},
		{"subject-ends-with", v1alpha1.MessageTraceSpec{
			StartTime: all.StartTime, EndTime: all.EndTime, Subject: &v1alpha1.SubjectFilter{Value: "1001", Match: "EndsWith"},
		}, 2, false},
		{"nothing-matches", v1alpha1.MessageTraceSpec{
			StartTime: all.StartTime, EndTime: all.EndTime, SenderAddresses: []v1alpha1.AddressPattern{"*@nowhere.test"},
		}, 0, false},
		{"truncated-by-result-limit", v1alpha1.MessageTraceSpec{StartTime: all.StartTime, EndTime: all.EndTime, ResultLimit: 3}, 15, true},
	}
	objs := map[string]*v1alpha1.MessageTrace{}
	for _, tc := range cases {
		objs[tc.name] = create(t, env.Client, ns, tc.name, tc.spec)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mt := waitUntil(t, env.Client, objs[tc.name], "finished", isFinished)
			requireCondition(t, mt, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
			requireCondition(t, mt, v1alpha1.ConditionFailed, metav1.ConditionFalse, v1alpha1.ReasonCompleted)
			requireCondition(t, mt, v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, v1alpha1.ReasonStoreAvailable)
			s := mt.Status
			if s.Phase != v1alpha1.PhaseSucceeded || s.ObservedGeneration != mt.Generation || s.Attempts != 0 {
				t.Errorf("phase %s, observedGeneration %d (generation %d), attempts %d", s.Phase, s.ObservedGeneration, mt.Generation, s.Attempts)
			}
			want, counts := expected(t, d0, mt)
			if tc.wantTotal >= 0 && int64(len(want)) != tc.wantTotal {
				t.Fatalf("the reference finds %d rows, the test expects %d: fix the seed or the case", len(want), tc.wantTotal)
			}
			if s.TotalMatches != int64(len(want)) || s.Counts == nil || *s.Counts != counts {
				t.Errorf("totalMatches %d, counts %+v; want %d, %+v", s.TotalMatches, s.Counts, len(want), counts)
			}
			if tc.truncated {
				want = want[:mt.Spec.Limit()]
			}
			requireRows(t, tc.name, s.Rows, want)
			if s.Truncated != tc.truncated || s.ReturnedRows != int32(len(want)) {
				t.Errorf("truncated %v, returnedRows %d; want %v, %d", s.Truncated, s.ReturnedRows, tc.truncated, len(want))
			}
			start, end := mt.Spec.ResolveTimeRange(mt.CreationTimestamp.Time)
			if s.TimeRange == nil || !s.TimeRange.Start.Time.Equal(start) || !s.TimeRange.End.Time.Equal(end) ||
				s.TimeRange.Duration != FormatDuration(end.Sub(start)) {
				t.Errorf("timeRange %+v, want %s..%s", s.TimeRange, start, end)
			}
			if s.StartTime == nil || !s.StartTime.Time.Equal(now) || s.CompletionTime == nil || !s.CompletionTime.Time.Equal(now) {
				t.Errorf("startTime %v, completionTime %v; want the controller clock's %v", s.StartTime, s.CompletionTime, now)
			}
		})
	}
	t.Run("readable range", func(t *testing.T) {
		mt := waitUntil(t, env.Client, objs["last-48h-default-window"], "finished", isFinished)
		if mt.Status.TimeRange.Duration != "48h" {
			t.Errorf("duration %q, want 48h", mt.Status.TimeRange.Duration)
		}
		if !mt.Status.TimeRange.End.Time.Equal(mt.CreationTimestamp.Time) {
			t.Errorf("a relative window ends at %v, not at creation %v", mt.Status.TimeRange.End, mt.CreationTimestamp)
		}
	})
	t.Run("events", func(t *testing.T) {
		evs := waitForEvents(t, env.Client, objs["alice-invoices"], "Started", "Succeeded")
		for _, e := range evs {
			if e.Type != "Normal" || e.ReportingController != ControllerName {
				t.Errorf("event %s: type %s, reporting controller %q", e.Reason, e.Type, e.ReportingController)
			}
		}
	})
	if got := metricValue(t, tracesTotal.WithLabelValues("succeeded")) - succeededBefore; got < float64(len(cases)) {
		t.Errorf("mailtrace_traces_total{result=succeeded} grew by %v, want at least %d", got, len(cases))
	}
	if d, r := metricValue(t, traceDuration)-durationsBefore, metricValue(t, traceRows)-rowsBefore; d < float64(len(cases)) || r < float64(len(cases)) {
		t.Errorf("trace duration and rows histograms observed %v and %v runs, want at least %d", d, r, len(cases))
	}
}

// TestByteBudgetTruncates: rows are also cut to the byte budget, and status
// says so.
func TestByteBudgetTruncates(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	d0 := day0()
	st := openSQLite(t)
	seedStore(t, st, d0)
	probe := &v1alpha1.MessageTrace{Spec: v1alpha1.MessageTraceSpec{StartTime: abs(d0), EndTime: abs(d0.Add(5 * day))}}
	want, _ := expected(t, d0, probe)
	budget := RowBytes(want[0]) + RowBytes(want[1]) + RowBytes(want[2]) - 1 // two rows fit, not three
	startManager(t, env, ns, st, clock.RealClock{}, Options{MaxStatusBytes: budget})

	mt := waitUntil(t, env.Client, create(t, env.Client, ns, "budget", probe.Spec), "finished", isFinished)
	requireCondition(t, mt, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
	requireRows(t, "budget", mt.Status.Rows, want[:2])
	if !mt.Status.Truncated || mt.Status.ReturnedRows != 2 || mt.Status.TotalMatches != int64(len(want)) {
		t.Errorf("truncated %v, returnedRows %d, totalMatches %d; want true, 2, %d",
			mt.Status.Truncated, mt.Status.ReturnedRows, mt.Status.TotalMatches, len(want))
	}
}

// TestLongRangeWaitsForReport: a range over the status limit is answered by
// a report; with no report store at all it is not failed and not run: it
// waits with a reason that says what is missing, and queries nothing.
func TestLongRangeWaitsForReport(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	st := &countingStore{Store: openSQLite(t)}
	seedStore(t, st, day0())
	r := startManager(t, env, ns, st, clock.RealClock{}, Options{})

	long := create(t, env.Client, ns, "eleven-days", v1alpha1.MessageTraceSpec{Window: &metav1.Duration{Duration: 11 * day}})
	atLimit := create(t, env.Client, ns, "ten-days", v1alpha1.MessageTraceSpec{Window: &metav1.Duration{Duration: 10 * day}})

	mt := waitUntil(t, env.Client, long, "waiting for a report store", reasonIs(v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonNoDefaultReportStore))
	c := requireCondition(t, mt, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonNoDefaultReportStore)
	if !strings.Contains(c.Message, "report store") || !strings.Contains(c.Message, "storeName") {
		t.Errorf("message does not explain itself: %q", c.Message)
	}
	if mt.Condition(v1alpha1.ConditionFailed) != nil || mt.IsFinished() || mt.Status.Phase != v1alpha1.PhasePending {
		t.Errorf("a range needing a report must not fail: phase %s, conditions %+v", mt.Status.Phase, mt.Status.Conditions)
	}
	if mt.Status.TimeRange == nil || mt.Status.TimeRange.Duration != "264h" || mt.Status.StartTime != nil {
		t.Errorf("timeRange %+v, startTime %v", mt.Status.TimeRange, mt.Status.StartTime)
	}
	waitForEvents(t, env.Client, mt, string(v1alpha1.ReasonNoDefaultReportStore))

	ok := waitUntil(t, env.Client, atLimit, "finished", isFinished)
	requireCondition(t, ok, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)

	// Reconciling again queries nothing and waits long (a ReportStore or a
	// restart with a default store wakes it).
	before := st.queries.Load()
	res, err := r.Reconcile(testCtx(t), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(long)})
	if err != nil || res.RequeueAfter != DefaultMaxRetryBackoff {
		t.Errorf("Reconcile = %+v, %v; want a requeue after %s", res, err, DefaultMaxRetryBackoff)
	}
	if got := st.queries.Load() - before; got != 0 {
		t.Errorf("a range waiting for a report store queried the store %d times", got)
	}
}

// TestTerminalSpecs: what CEL cannot check ends the trace with Failed and a
// reason, without querying the store. The controller's clock is set ten days
// before the seeded flow, so a range inside it starts "in the future".
func TestTerminalSpecs(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	d0 := day0()
	st := &countingStore{Store: openSQLite(t)}
	seedStore(t, st, d0)
	then := d0.Add(-10 * day)
	startManager(t, env, ns, st, clocktesting.NewFakePassiveClock(then), Options{})

	cases := []struct {
		name   string
		spec   v1alpha1.MessageTraceSpec
		reason v1alpha1.Reason
	}{
		{"start-in-future", v1alpha1.MessageTraceSpec{StartTime: abs(d0), EndTime: abs(d0.Add(day))}, v1alpha1.ReasonStartInFuture},
		// startTime alone ends at creation: over 90 days, which CEL cannot see.
		{"open-range-over-90-days", v1alpha1.MessageTraceSpec{StartTime: abs(then.Add(-100 * day))}, v1alpha1.ReasonInvalidSpec},
		{"tab-in-address", v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{"a\tb@example.com"}, StartTime: abs(then.Add(-day)), EndTime: abs(then)}, v1alpha1.ReasonInvalidSpec},
	}
	for _, tc := range cases {
		mt := create(t, env.Client, ns, tc.name, tc.spec)
		t.Run(tc.name, func(t *testing.T) {
			got := waitUntil(t, env.Client, mt, "finished", isFinished)
			requireCondition(t, got, v1alpha1.ConditionFailed, metav1.ConditionTrue, tc.reason)
			requireCondition(t, got, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, tc.reason)
			if got.Status.Phase != v1alpha1.PhaseFailed || got.Status.CompletionTime == nil || !got.Status.CompletionTime.Time.Equal(then) {
				t.Errorf("phase %s, completionTime %v", got.Status.Phase, got.Status.CompletionTime)
			}
			waitForEvents(t, env.Client, got, "Failed")
		})
	}
	if n := st.queries.Load(); n != 0 {
		t.Errorf("terminal specs queried the store %d times", n)
	}
}

// TestFinishedTraceIsNotRerun: once Succeeded, a trace is never run again,
// whatever happens to the store or the object's metadata.
func TestFinishedTraceIsNotRerun(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	d0 := day0()
	st := &countingStore{Store: openSQLite(t)}
	seedStore(t, st, d0)
	r := startManager(t, env, ns, st, clock.RealClock{}, Options{})

	spec := v1alpha1.MessageTraceSpec{StartTime: abs(d0), EndTime: abs(d0.Add(5 * day)), SenderAddresses: []v1alpha1.AddressPattern{"alice@*"}}
	done := waitUntil(t, env.Client, create(t, env.Client, ns, "once", spec), "finished", isFinished)
	queries := st.queries.Load()

	// More matching mail arrives, and someone touches the object.
	more := []seedMsg{{"m99", 4*day + 4*time.Hour, "alice@example.com", "Late", mailflow.DirectionOutbound, "10.0.0.5", 10,
		[]seedRcpt{{addr: "zoe@example.org", status: mailflow.StatusDelivered}}}}
	if err := st.Append(testCtx(t), seedEvents(d0, more)); err != nil {
		t.Fatal(err)
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"yes"}}}`))
	if err := env.Client.Patch(testCtx(t), done.DeepCopy(), patch); err != nil {
		t.Fatal(err)
	}
	res, err := r.Reconcile(testCtx(t), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(done)})
	if err != nil || res != (ctrl.Result{}) {
		t.Fatalf("Reconcile of a finished trace = %+v, %v", res, err)
	}
	time.Sleep(time.Second) // give the manager a chance to (wrongly) react to the annotation
	var now v1alpha1.MessageTrace
	if err := env.Client.Get(testCtx(t), client.ObjectKeyFromObject(done), &now); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(now.Status, done.Status) {
		t.Errorf("status of a finished trace changed:\n%+v\nwas\n%+v", now.Status, done.Status)
	}
	if got := st.queries.Load() - queries; got != 0 {
		t.Errorf("a finished trace queried the store %d more times", got)
	}
}

// TestStoreDownThenBack runs a trace against a real PostgreSQL that is
// stopped: the trace says StoreUnavailable and retries with backoff, and
// succeeds with the right rows once the server is back.
func TestStoreDownThenBack(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	d0 := day0()
	pg, err := postgres.Open(testCtx(t), pgtest.DSN(t), postgres.Options{})
	if err != nil {
		t.Fatalf("opening PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	seedStore(t, pg, d0)
	errorsBefore := metricValue(t, storeErrors)
	startManager(t, env, ns, pg, clock.RealClock{}, Options{
		QueryTimeout: 5 * time.Second, RetryBackoff: 200 * time.Millisecond, MaxRetryBackoff: time.Second,
	})

	pgtest.Stop(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			pgtest.Start(t)
		}
	})
	spec := v1alpha1.MessageTraceSpec{StartTime: abs(d0), EndTime: abs(d0.Add(5 * day)), RecipientAddresses: []v1alpha1.AddressPattern{"*@example.com"}}
	mt := create(t, env.Client, ns, "store-down", spec)

	down := waitUntil(t, env.Client, mt, "retrying a store that is down", func(mt *v1alpha1.MessageTrace) bool {
		return reasonIs(v1alpha1.ConditionStoreAvailable, metav1.ConditionFalse, v1alpha1.ReasonStoreUnavailable)(mt) && mt.Status.Attempts >= 2
	})
	c := requireCondition(t, down, v1alpha1.ConditionStoreAvailable, metav1.ConditionFalse, v1alpha1.ReasonStoreUnavailable)
	t.Logf("while down (attempt %d): %s", down.Status.Attempts, c.Message)
	requireCondition(t, down, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonStoreUnavailable)
	if down.Status.Phase != v1alpha1.PhaseRunning || down.IsFinished() || down.Status.StartTime == nil {
		t.Errorf("while the store is down: phase %s, finished %v, startTime %v", down.Status.Phase, down.IsFinished(), down.Status.StartTime)
	}
	waitForEvents(t, env.Client, down, "Started", "StoreUnavailable")
	if got := metricValue(t, storeErrors) - errorsBefore; got < 2 {
		t.Errorf("mailtrace_store_errors_total grew by %v, want at least 2", got)
	}

	pgtest.Start(t)
	restarted = true
	back := waitUntil(t, env.Client, mt, "finished", isFinished)
	requireCondition(t, back, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
	requireCondition(t, back, v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, v1alpha1.ReasonStoreAvailable)
	want, counts := expected(t, d0, back)
	if len(want) == 0 {
		t.Fatal("the case matches nothing: fix the seed")
	}
	requireRows(t, "store-down", back.Status.Rows, want)
	if back.Status.TotalMatches != int64(len(want)) || *back.Status.Counts != counts || back.Status.Attempts < 2 || back.Status.Truncated {
		t.Errorf("totalMatches %d, counts %+v, attempts %d, truncated %v; want %d, %+v, >= 2, false",
			back.Status.TotalMatches, *back.Status.Counts, back.Status.Attempts, back.Status.Truncated, len(want), counts)
	}
	if !back.Status.StartTime.Equal(down.Status.StartTime) {
		t.Errorf("startTime moved from %v to %v: it is the first attempt's", down.Status.StartTime, back.Status.StartTime)
	}
	waitForEvents(t, env.Client, back, "Succeeded")
}
