package messagetrace

import (
	"context"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
)

// The report decisions, as pure functions (table-tested in decide_test.go).

// ReportUpFront says whether a trace needs a report before anything is
// queried: its range is longer than the status threshold, or its spec asks.
// (A shorter trace whose matches do not fit in status gets one too, once the
// query has said so.)
func ReportUpFront(spec *v1alpha1.MessageTraceSpec, rng, threshold time.Duration) bool {
	return rng > threshold || (spec.Report != nil && spec.Report.Always)
}

// ExportFailureReason names why an export failed: the object store's reason
// (StoreUnreachable, BucketMissing, AccessDenied, QuotaExceeded, ...), or
// StoreUnavailable when the trace store failed.
func ExportFailureReason(err error) v1alpha1.Reason {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, report.ErrTraceStore):
		return v1alpha1.ReasonStoreUnavailable
	case errors.Is(err, context.Canceled):
		return v1alpha1.Reason(objectstore.ReasonCanceled)
	}
	return v1alpha1.Reason(objectstore.Reason(err))
}

// needsSomeone are failures that retrying soon cannot fix: someone has to
// change the credentials, the bucket or the configuration.
func needsSomeone(r v1alpha1.Reason) bool {
	switch r {
	case v1alpha1.ReasonAccessDenied, v1alpha1.ReasonBucketMissing, v1alpha1.Reason(objectstore.ReasonInvalidConfig):
		return true
	}
	return false
}

// ExportRetry decides what follows the failure of export attempt number
// `attempts` (1 for the first): terminal once the attempts reach max (or the
// trace store refused the query); otherwise wait base*2^(attempts-1), at
// most maxWait, and maxWait at once for failures that need someone to act
// (no retry storm on AccessDenied).
func ExportRetry(reason v1alpha1.Reason, attempts, maxAttempts int32, base, maxWait time.Duration) (time.Duration, bool) {
	if attempts >= maxAttempts || reason == v1alpha1.ReasonQueryFailed {
		return 0, true
	}
	if needsSomeone(reason) {
		return maxWait, false
	}
	return controllerkit.Backoff(attempts, base, maxWait), false
}

// TTLDue says, for a finished trace, whether its ttlSecondsAfterFinished
// has passed (due), or how long until it does; ok is false without a TTL or
// a completion time.
func TTLDue(completed *metav1.Time, ttl *int32, now time.Time) (due bool, wait time.Duration, ok bool) {
	if completed == nil || ttl == nil {
		return false, 0, false
	}
	at := completed.Add(time.Duration(*ttl) * time.Second)
	if !now.Before(at) {
		return true, 0, true
	}
	return false, at.Sub(now), true
}

// GiveUpDeleting says whether the finalizer stops trying to delete a report:
// the MessageTrace has been waiting for timeout since its deletion.
func GiveUpDeleting(deletion *metav1.Time, now time.Time, timeout time.Duration) bool {
	return deletion != nil && !now.Before(deletion.Add(timeout))
}

// WantsFinalizer says whether a trace's report is deleted with it.
func WantsFinalizer(spec *v1alpha1.MessageTraceSpec) bool {
	return spec.Report != nil && spec.Report.DeletionPolicy == v1alpha1.ReportDelete
}
