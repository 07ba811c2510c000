package messagetrace

import (
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
)

func TestReportUpFront(t *testing.T) {
	th := 10 * day
	cases := []struct {
		name string
		spec v1alpha1.MessageTraceSpec
		rng  time.Duration
		want bool
	}{
		{"short, no report section", v1alpha1.MessageTraceSpec{}, 2 * day, false},
		{"exactly the threshold", v1alpha1.MessageTraceSpec{}, th, false},
		{"over the threshold", v1alpha1.MessageTraceSpec{}, th + time.Second, true},
		{"short, report section without always", v1alpha1.MessageTraceSpec{Report: &v1alpha1.ReportSpec{Gzip: true}}, day, false},
		{"short, always", v1alpha1.MessageTraceSpec{Report: &v1alpha1.ReportSpec{Always: true}}, day, true},
	}
	for _, tc := range cases {
		if got := ReportUpFront(&tc.spec, tc.rng, th); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestExportFailureReason(t *testing.T) {
	cases := []struct {
		err  error
		want v1alpha1.Reason
	}{
		{nil, ""},
		{fmt.Errorf("report: %w: trace: %w", report.ErrTraceStore, errors.New("conn refused")), v1alpha1.ReasonStoreUnavailable},
		{fmt.Errorf("upload: %w", objectstore.ErrUnreachable), v1alpha1.ReasonStoreUnreachable},
		{objectstore.ErrAccessDenied, v1alpha1.ReasonAccessDenied},
		{objectstore.ErrBucketMissing, v1alpha1.ReasonBucketMissing},
		{objectstore.ErrQuotaExceeded, v1alpha1.ReasonQuotaExceeded},
		{errors.New("odd"), "UploadFailed"},
	}
	for _, tc := range cases {
		if got := ExportFailureReason(tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
	// A query the store refuses is recognised as terminal.
	err := fmt.Errorf("report: %w: trace: %w", report.ErrTraceStore, mailflow.ErrInvalidQuery)
	if !IsTerminal(err) {
		t.Error("an invalid query wrapped by the report is not terminal")
	}
}

func TestExportRetry(t *testing.T) {
	base, maxWait := 5*time.Second, 5*time.Minute
	cases := []struct {
		name     string
		reason   v1alpha1.Reason
		attempts int32
		wait     time.Duration
		terminal bool
	}{
		{"first unreachable", v1alpha1.ReasonStoreUnreachable, 1, 5 * time.Second, false},
		{"third unreachable", v1alpha1.ReasonStoreUnreachable, 3, 20 * time.Second, false},
		{"quota", v1alpha1.ReasonQuotaExceeded, 2, 10 * time.Second, false},
		{"trace store", v1alpha1.ReasonStoreUnavailable, 1, 5 * time.Second, false},
		{"access denied waits long at once", v1alpha1.ReasonAccessDenied, 1, maxWait, false},
		{"bucket missing waits long", v1alpha1.ReasonBucketMissing, 1, maxWait, false},
		{"attempts exhausted", v1alpha1.ReasonStoreUnreachable, 5, 0, true},
		{"query refused", v1alpha1.ReasonQueryFailed, 1, 0, true},
	}
	for _, tc := range cases {
		wait, term := ExportRetry(tc.reason, tc.attempts, 5, base, maxWait)
		if wait != tc.wait || term != tc.terminal {
			t.Errorf("%s: (%s, %v), want (%s, %v)", tc.name, wait, term, tc.wait, tc.terminal)
		}
	}
}

func TestTTLDueAndGiveUp(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	done := metav1.NewTime(now.Add(-30 * time.Second))
	cases := []struct {
		name     string
		done     *metav1.Time
		ttl      *int32
		due, ok  bool
		wantWait time.Duration
	}{
		{"no ttl", &done, nil, false, false, 0},
		{"not finished", nil, ptr.To[int32](10), false, false, 0},
		{"passed", &done, ptr.To[int32](10), true, true, 0},
		{"exactly now", &done, ptr.To[int32](30), true, true, 0},
		{"later", &done, ptr.To[int32](90), false, true, time.Minute},
		{"zero deletes at once", &done, ptr.To[int32](0), true, true, 0},
	}
	for _, tc := range cases {
		due, wait, ok := TTLDue(tc.done, tc.ttl, now)
		if due != tc.due || ok != tc.ok || wait != tc.wantWait {
			t.Errorf("%s: (%v, %s, %v), want (%v, %s, %v)", tc.name, due, wait, ok, tc.due, tc.wantWait, tc.ok)
		}
	}
	del := metav1.NewTime(now.Add(-5 * time.Minute))
	if GiveUpDeleting(&del, now, 10*time.Minute) || !GiveUpDeleting(&del, now, 5*time.Minute) || GiveUpDeleting(nil, now, 0) {
		t.Error("GiveUpDeleting: wrong answer around the timeout")
	}
	if WantsFinalizer(&v1alpha1.MessageTraceSpec{}) || WantsFinalizer(&v1alpha1.MessageTraceSpec{Report: &v1alpha1.ReportSpec{DeletionPolicy: v1alpha1.ReportRetain}}) ||
		!WantsFinalizer(&v1alpha1.MessageTraceSpec{Report: &v1alpha1.ReportSpec{DeletionPolicy: v1alpha1.ReportDelete}}) {
		t.Error("WantsFinalizer: only the Delete policy wants the finalizer")
	}
}
