package reportstore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/reportstore"
)

func TestAvailability(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status metav1.ConditionStatus
		reason v1alpha1.Reason
	}{
		{"ok", nil, metav1.ConditionTrue, v1alpha1.ReasonChecked},
		{"no secret", fmt.Errorf("%w: Secret x not found", reportstore.ErrCredentialsMissing), metav1.ConditionFalse, v1alpha1.ReasonCredentialsMissing},
		{"unreachable", fmt.Errorf("put: %w", objectstore.ErrUnreachable), metav1.ConditionFalse, v1alpha1.ReasonStoreUnreachable},
		{"bucket", objectstore.ErrBucketMissing, metav1.ConditionFalse, v1alpha1.ReasonBucketMissing},
		{"denied", objectstore.ErrAccessDenied, metav1.ConditionFalse, v1alpha1.ReasonAccessDenied},
		{"quota", objectstore.ErrQuotaExceeded, metav1.ConditionFalse, v1alpha1.ReasonQuotaExceeded},
		{"other", errors.New("boom"), metav1.ConditionFalse, "UploadFailed"},
	}
	for _, tc := range cases {
		s, r, msg := Availability(tc.err)
		if s != tc.status || r != tc.reason || msg == "" {
			t.Errorf("%s: got %s/%s %q, want %s/%s", tc.name, s, r, msg, tc.status, tc.reason)
		}
	}
}

func TestNextCheck(t *testing.T) {
	every, retry := 5*time.Minute, 30*time.Second
	cases := []struct {
		reason    v1alpha1.Reason
		available bool
		want      time.Duration
	}{
		{v1alpha1.ReasonChecked, true, every},
		{v1alpha1.ReasonStoreUnreachable, false, retry},
		{v1alpha1.ReasonQuotaExceeded, false, retry},
		{v1alpha1.ReasonAccessDenied, false, every},
		{v1alpha1.ReasonBucketMissing, false, every},
		{v1alpha1.ReasonCredentialsMissing, false, every},
	}
	for _, tc := range cases {
		if got := NextCheck(tc.reason, tc.available, every, retry); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.reason, got, tc.want)
		}
	}
}
