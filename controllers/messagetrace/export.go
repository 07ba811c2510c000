package messagetrace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/reportstore"
)

// DefaultReportStore is the operator-wide report store, set at install time,
// used by traces that name no ReportStore (reportstore.Default, the service's
// type, under the name the manager wiring knows).
type DefaultReportStore = reportstore.Default

// target is where one trace's report goes.
type target struct {
	os       objectstore.Store
	name     string // ReportStore name, "" for the default
	endpoint string
	bucket   string
	prefix   string
}

// waitErr says why a report cannot start yet (no job is submitted).
type waitErr struct {
	reason v1alpha1.Reason
	msg    string
}

func (e *waitErr) Error() string { return e.msg }

// reportKey is the trace's object key relative to the store's prefix.
func reportKey(mt *v1alpha1.MessageTrace) string {
	gz := mt.Spec.Report != nil && mt.Spec.Report.Gzip
	return report.Key("", mt.Namespace, mt.Name, string(mt.UID), gz)
}

func fullKey(prefix, key string) string {
	if p := strings.Trim(prefix, "/"); p != "" {
		return p + "/" + key
	}
	return key
}

// hasReportStore says whether a report of the trace has somewhere to go:
// a ReportStore named in its spec, or the operator's default. A trace whose
// answer merely overflows status, with neither, keeps the status-only answer
// (truncated) rather than waiting for a store nobody configured.
func (r *Reconciler) hasReportStore(mt *v1alpha1.MessageTrace) bool {
	return (mt.Spec.Report != nil && mt.Spec.Report.StoreName != "") || (r.DefaultReportStore != nil && r.DefaultReportStore.Store != nil)
}

// resolveTarget finds the trace's report store: the named ReportStore of its
// namespace (which must be Available) or the operator's default.
func (r *Reconciler) resolveTarget(ctx context.Context, mt *v1alpha1.MessageTrace) (*target, error) {
	name := ""
	if mt.Spec.Report != nil {
		name = mt.Spec.Report.StoreName
	}
	if name == "" {
		d := r.DefaultReportStore
		if d == nil || d.Store == nil {
			return nil, &waitErr{v1alpha1.ReasonNoDefaultReportStore,
				"the trace needs a CSV report, it names no ReportStore (spec.report.storeName) and the operator has no default report store (--default-report-store-bucket)"}
		}
		return &target{os: d.Store, endpoint: d.Endpoint, bucket: d.Bucket, prefix: d.Prefix}, nil
	}
	rs := &v1alpha1.ReportStore{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: mt.Namespace, Name: name}, rs); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &waitErr{v1alpha1.ReasonReportStoreNotFound, fmt.Sprintf("waiting for ReportStore %s/%s, which does not exist: a MessageTrace uses only a ReportStore of its own namespace (%s), never one of another namespace", mt.Namespace, name, mt.Namespace)}
		}
		return nil, err
	}
	if !rs.IsAvailable() {
		reason, msg := v1alpha1.ReasonReportStoreUnavailable, "it has not been checked yet"
		if c := rs.Condition(v1alpha1.ConditionAvailable); c != nil && c.ObservedGeneration == rs.Generation {
			reason, msg = v1alpha1.Reason(c.Reason), c.Reason+": "+c.Message
		}
		return nil, &waitErr{reason, controllerkit.ShortMessage(fmt.Sprintf("waiting for ReportStore %s to be Available: %s", name, msg), nil)}
	}
	os, err := r.openStore(ctx, rs)
	if err != nil {
		if errors.Is(err, reportstore.ErrCredentialsMissing) {
			return nil, &waitErr{v1alpha1.ReasonCredentialsMissing, controllerkit.ShortMessage("ReportStore "+name, err)}
		}
		return nil, err
	}
	return &target{os: os, name: name, endpoint: rs.Spec.Endpoint, bucket: rs.Spec.Bucket, prefix: rs.Spec.Prefix}, nil
}

func (r *Reconciler) openStore(ctx context.Context, rs *v1alpha1.ReportStore) (objectstore.Store, error) {
	return reportstore.Open(ctx, r.APIReader, rs, r.newObjectStore, r.Grants)
}

func (r *Reconciler) newObjectStore(cfg objectstore.Config) (objectstore.Store, error) {
	o := r.Options.withDefaults()
	cfg.PartSize = o.PartSize
	cfg.MaxRetries = o.ObjectStoreMaxRetries
	cfg.UploadBuffers = o.UploadBuffers
	if r.NewObjectStore != nil {
		return r.NewObjectStore(cfg)
	}
	return objectstore.New(cfg)
}

// export runs the trace's report on the worker pool and follows it: it
// starts an attempt when no worker has the trace (the first time, after a
// backoff, or after a restart or leader change), shows progress while one
// runs, and records the outcome when it ends.
func (r *Reconciler) export(ctx context.Context, t *run) (*ctrl.Result, error) {
	st, uid := &t.mt.Status, t.mt.UID
	if js, ok := r.pool.Lookup(uid); ok && st.Report == nil {
		// The status write of the attempt that started this job failed: start afresh.
		r.pool.Forget(uid)
		return &ctrl.Result{RequeueAfter: time.Second}, nil
	} else if ok {
		if js.running {
			st.Report.RowsWritten = js.rows
			r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonExporting,
				fmt.Sprintf("writing the CSV report to s3://%s/%s: %d rows so far (attempt %d)", st.Report.Bucket, st.Report.Key, js.rows, st.Report.Attempts))
			return &ctrl.Result{RequeueAfter: t.opts.ProgressInterval}, nil
		}
		t.afterWrite = append(t.afterWrite, func() { r.pool.Forget(uid) })
		if js.err == nil {
			return r.completed(t, js)
		}
		return r.exportFailed(ctx, t, js.err)
	}
	if rep := st.Report; rep != nil {
		if rep.RetryAfter != nil && t.now.Before(rep.RetryAfter.Time) {
			return &ctrl.Result{RequeueAfter: rep.RetryAfter.Sub(t.now)}, nil
		}
		if rep.Phase == v1alpha1.ReportPhaseRunning {
			// A trace running without a worker: the operator restarted or
			// leadership moved in the middle of an export.
			rep.LastError = "Interrupted"
			t.events = append(t.events, Event{eventWarning, "ExportInterrupted",
				fmt.Sprintf("export attempt %d was interrupted (operator restart or leader change)", rep.Attempts)})
		}
		if rep.Attempts >= t.opts.MaxReportAttempts {
			r.fail(t, v1alpha1.ReasonReportAttemptsExhausted, fmt.Sprintf(
				"the report failed %d times (last: %s); create the trace again once the cause is fixed", rep.Attempts, rep.LastError))
			rep.Phase = v1alpha1.ReportPhaseFailed
			return &ctrl.Result{}, nil
		}
	}
	tg, err := r.resolveTarget(ctx, t.mt)
	if err != nil {
		var w *waitErr
		if !errors.As(err, &w) {
			return nil, err
		}
		if c := t.mt.Condition(v1alpha1.ConditionSucceeded); c == nil || c.Reason != string(w.reason) {
			t.events = append(t.events, Event{eventWarning, string(w.reason), w.msg})
		}
		r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, w.reason, w.msg)
		return &ctrl.Result{RequeueAfter: t.opts.MaxRetryBackoff}, nil
	}
	key := reportKey(t.mt)
	rt := v1alpha1.ReportSummary
	opts := report.Options{PageSize: t.opts.ReportPageSize, Metadata: map[string]string{
		"mailtrace-namespace": t.mt.Namespace, "mailtrace-name": t.mt.Name, "mailtrace-uid": string(uid),
	}}
	if s := t.mt.Spec.Report; s != nil {
		opts.Gzip = s.Gzip
		if s.Type != "" {
			rt = s.Type
		}
	}
	opts.Kind = report.Kind(rt)
	j := &job{uid: uid, obj: client.ObjectKeyFromObject(t.mt), key: key, os: tg.os, st: r.Store, q: t.query,
		opts: opts, keep: t.mt.Spec.Limit()}
	if !r.pool.Submit(j) {
		return &ctrl.Result{RequeueAfter: time.Second}, nil // the pool is not running yet
	}
	if st.StartTime == nil {
		st.StartTime = ptrTime(t.now)
	}
	prev := st.Report
	st.Report = &v1alpha1.ReportStatus{
		Phase: v1alpha1.ReportPhaseRunning, Store: tg.name, Endpoint: tg.endpoint, Bucket: tg.bucket,
		Key: fullKey(tg.prefix, key), Type: rt, Attempts: 1,
	}
	if prev != nil {
		st.Report.Attempts = prev.Attempts + 1
		st.Report.LastError = prev.LastError
	}
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, v1alpha1.ReasonExporting,
		fmt.Sprintf("writing the CSV report to s3://%s/%s (attempt %d)", st.Report.Bucket, st.Report.Key, st.Report.Attempts))
	return &ctrl.Result{RequeueAfter: t.opts.ProgressInterval}, nil
}

// completed records a finished report. A trace whose query was skipped (a
// long range) takes its counts and first rows from the export.
func (r *Reconciler) completed(t *run, js jobState) (*ctrl.Result, error) {
	st := &t.mt.Status
	rep := st.Report
	rep.Phase = v1alpha1.ReportPhaseCompleted
	rep.Rows, rep.RowsWritten, rep.Bytes, rep.SHA256 = js.res.Rows, js.res.Rows, js.res.Bytes, js.res.SHA256
	rep.ContentType, rep.ContentEncoding = js.res.ContentType, js.res.ContentEncoding
	rep.RetryAfter, rep.LastError = nil, ""
	if js.info.Object != "" {
		rep.Key = js.info.Object
	}
	if st.Counts == nil {
		rows := make([]v1alpha1.TraceRow, 0, len(js.first))
		for _, row := range js.first {
			rows = append(rows, ToRow(row))
		}
		rows = FitRows(rows, t.mt.Spec.Limit(), t.opts.MaxStatusBytes)
		st.Rows, st.ReturnedRows = rows, int32(len(rows))
		st.Counts = CountsOf(js.counts)
	}
	st.TotalMatches = max(js.res.TraceRows, int64(st.ReturnedRows))
	st.Truncated = st.TotalMatches > int64(st.ReturnedRows)
	st.CompletionTime = ptrTime(t.now)
	st.ObservedGeneration = t.mt.Generation
	r.setCondition(t, v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, v1alpha1.ReasonStoreAvailable, "the trace store answered")
	msg := fmt.Sprintf("%d matches, the newest %d shown; the %s report (%d rows, %d bytes) is at s3://%s/%s",
		st.TotalMatches, st.ReturnedRows, rep.Type, rep.Rows, rep.Bytes, rep.Bucket, rep.Key)
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, controllerkit.ShortMessage(msg, nil))
	r.setCondition(t, v1alpha1.ConditionFailed, metav1.ConditionFalse, v1alpha1.ReasonCompleted, "the trace has its answer")
	t.events = append(t.events, Event{eventNormal, "ReportUploaded", controllerkit.ShortMessage(msg, nil)})
	return ttlResult(t), nil
}

// exportFailed records a failed attempt: retried with backoff, or terminal.
func (r *Reconciler) exportFailed(ctx context.Context, t *run, err error) (*ctrl.Result, error) {
	rep := t.mt.Status.Report
	reason := ExportFailureReason(err)
	if errors.Is(err, report.ErrTraceStore) && IsTerminal(err) {
		reason = v1alpha1.ReasonQueryFailed
	}
	rep.LastError = string(reason)
	wait, terminal := ExportRetry(reason, rep.Attempts, t.opts.MaxReportAttempts, t.opts.RetryBackoff, t.opts.MaxRetryBackoff)
	if terminal {
		rep.Phase = v1alpha1.ReportPhaseFailed
		r.fail(t, v1alpha1.ReasonReportAttemptsExhausted, controllerkit.ShortMessage(
			fmt.Sprintf("the report failed %d times, the last with %s", rep.Attempts, reason), err))
		if reason == v1alpha1.ReasonQueryFailed {
			r.fail(t, reason, controllerkit.ShortMessage("the trace store refused the query", err))
		}
		return &ctrl.Result{}, nil
	}
	rep.Phase = v1alpha1.ReportPhaseRetrying
	rep.RetryAfter = ptrTime(t.now.Add(wait))
	msg := controllerkit.ShortMessage(fmt.Sprintf("report attempt %d of %d failed (%s), next in %s", rep.Attempts, t.opts.MaxReportAttempts, reason, wait), err)
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionFalse, reason, msg)
	t.events = append(t.events, Event{eventWarning, string(reason), msg})
	reportErrors.WithLabelValues(string(reason)).Inc()
	return &ctrl.Result{RequeueAfter: wait}, nil
}

func ttlResult(t *run) *ctrl.Result {
	if _, wait, ok := TTLDue(t.mt.Status.CompletionTime, t.mt.Spec.TTLSecondsAfterFinished, t.now); ok {
		return &ctrl.Result{RequeueAfter: max(wait, time.Second)}
	}
	return &ctrl.Result{}
}
