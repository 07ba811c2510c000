package downloadrequest

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

func TestLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := metav1.NewTime(t0.Add(10 * time.Minute))
	keep := time.Hour
	cases := []struct {
		name     string
		st       v1alpha1.DownloadRequestStatus
		now      time.Time
		want     Step
		wantWait time.Duration
	}{
		{"new", v1alpha1.DownloadRequestStatus{}, t0, StepIssue, 0},
		{"pending", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadPending}, t0, StepIssue, 0},
		{"ready-valid", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadReady, Expiration: &exp}, t0.Add(time.Minute), StepWait, 9 * time.Minute},
		{"ready-expired", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadReady, Expiration: &exp}, t0.Add(10 * time.Minute), StepExpire, time.Hour},
		{"expired-kept", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadExpired, Expiration: &exp}, t0.Add(40 * time.Minute), StepWait, 30 * time.Minute},
		{"expired-gone", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadExpired, Expiration: &exp}, t0.Add(70 * time.Minute), StepDelete, 0},
		{"ready-long-past", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadReady, Expiration: &exp}, t0.Add(2 * time.Hour), StepDelete, 0},
		{"ready-without-expiration", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadReady}, t0, StepIssue, 0},
		{"failed-kept", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadFailed}, t0.Add(time.Minute), StepWait, 59 * time.Minute},
		{"failed-gone", v1alpha1.DownloadRequestStatus{Phase: v1alpha1.DownloadFailed}, t0.Add(time.Hour), StepDelete, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step, wait := Lifecycle(&tc.st, t0, tc.now, keep)
			if step != tc.want || wait != tc.wantWait {
				t.Errorf("got %v %s, want %v %s", step, wait, tc.want, tc.wantWait)
			}
		})
	}
}

func TestRelativeKey(t *testing.T) {
	for _, tc := range []struct{ prefix, key, want string }{
		{"", "ns/a/x.csv", "ns/a/x.csv"},
		{"reports", "reports/ns/a/x.csv", "ns/a/x.csv"},
		{"/reports/", "reports/ns/a/x.csv", "ns/a/x.csv"},
		{"a/b", "a/b/ns/x.csv", "ns/x.csv"},
	} {
		if got := RelativeKey(tc.prefix, tc.key); got != tc.want {
			t.Errorf("RelativeKey(%q, %q) = %q, want %q", tc.prefix, tc.key, got, tc.want)
		}
	}
}

func TestReportProblem(t *testing.T) {
	finished := []metav1.Condition{{Type: string(v1alpha1.ConditionSucceeded), Status: metav1.ConditionTrue, Reason: "Completed"}}
	cases := []struct {
		name     string
		st       v1alpha1.MessageTraceStatus
		want     v1alpha1.Reason
		terminal bool
	}{
		{"running", v1alpha1.MessageTraceStatus{}, v1alpha1.ReasonReportPending, false},
		{"exporting", v1alpha1.MessageTraceStatus{Report: &v1alpha1.ReportStatus{Phase: v1alpha1.ReportPhaseRunning}}, v1alpha1.ReasonReportPending, false},
		{"completed", v1alpha1.MessageTraceStatus{Conditions: finished, Report: &v1alpha1.ReportStatus{Phase: v1alpha1.ReportPhaseCompleted}}, "", false},
		{"report-failed", v1alpha1.MessageTraceStatus{Report: &v1alpha1.ReportStatus{Phase: v1alpha1.ReportPhaseFailed}}, v1alpha1.ReasonNoReport, true},
		{"finished-without-report", v1alpha1.MessageTraceStatus{Conditions: finished}, v1alpha1.ReasonNoReport, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Status: tc.st}
			reason, msg, terminal := ReportProblem(mt)
			if reason != tc.want || terminal != tc.terminal || (reason != "" && msg == "") {
				t.Errorf("got %q %v (%q), want %q %v", reason, terminal, msg, tc.want, tc.terminal)
			}
		})
	}
}
