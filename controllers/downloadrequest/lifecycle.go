package downloadrequest

import (
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// Step is what a reconcile does with a request.
type Step int

// Steps of a request's life.
const (
	// StepIssue: look the report up and presign a URL.
	StepIssue Step = iota
	// StepWait: nothing to do until RequeueAfter.
	StepWait
	// StepExpire: the URL has expired: remove it from status.
	StepExpire
	// StepDelete: the request has been kept long enough.
	StepDelete
)

// Lifecycle decides the next step of a request at now: a Ready request's URL
// expires at status.expiration and the request is deleted keep later; a
// Failed one is deleted keep after its creation; a Pending one is issued.
// wait is when to look again (zero: no requeue needed).
func Lifecycle(st *v1alpha1.DownloadRequestStatus, created, now time.Time, keep time.Duration) (step Step, wait time.Duration) {
	switch st.Phase {
	case v1alpha1.DownloadReady, v1alpha1.DownloadExpired:
		if st.Expiration == nil {
			return StepIssue, 0
		}
		exp := st.Expiration.Time
		switch {
		case !now.Before(exp.Add(keep)):
			return StepDelete, 0
		case !now.Before(exp) && st.Phase == v1alpha1.DownloadReady:
			return StepExpire, exp.Add(keep).Sub(now)
		case !now.Before(exp):
			return StepWait, exp.Add(keep).Sub(now)
		}
		return StepWait, exp.Sub(now)
	case v1alpha1.DownloadFailed:
		if !now.Before(created.Add(keep)) {
			return StepDelete, 0
		}
		return StepWait, created.Add(keep).Sub(now)
	}
	return StepIssue, 0
}

// RelativeKey is the report's key relative to its store's prefix (status.report
// records the full key; object stores take keys relative to their prefix).
func RelativeKey(prefix, key string) string {
	if p := strings.Trim(prefix, "/"); p != "" {
		return strings.TrimPrefix(key, p+"/")
	}
	return key
}

// ReportProblem says why a trace's report cannot be downloaded (yet):
// terminal is true when waiting will not help. An empty reason means the
// report is complete.
func ReportProblem(mt *v1alpha1.MessageTrace) (reason v1alpha1.Reason, msg string, terminal bool) {
	rep := mt.Status.Report
	switch {
	case rep != nil && rep.Phase == v1alpha1.ReportPhaseCompleted:
		return "", "", false
	case rep != nil && rep.Phase == v1alpha1.ReportPhaseFailed:
		return v1alpha1.ReasonNoReport, "the report of MessageTrace " + mt.Name + " failed: " + rep.LastError, true
	case mt.IsFinished():
		return v1alpha1.ReasonNoReport, "MessageTrace " + mt.Name + " finished without a report (its answer is in its status; set spec.report.always to get one)", true
	case rep != nil:
		return v1alpha1.ReasonReportPending, "waiting for the report of MessageTrace " + mt.Name + " (" + string(rep.Phase) + ")", false
	}
	return v1alpha1.ReasonReportPending, "waiting for MessageTrace " + mt.Name + " to finish", false
}
