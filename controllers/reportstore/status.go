package reportstore

import (
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/reportstore"
)

// The decisions of the controller, as pure functions (table-tested).

// Availability turns the result of a check into the Available condition's
// status, reason and message.
func Availability(err error) (metav1.ConditionStatus, v1alpha1.Reason, string) {
	if err == nil {
		return metav1.ConditionTrue, v1alpha1.ReasonChecked, "reachable, the bucket exists and a probe object could be written and deleted"
	}
	if errors.Is(err, reportstore.ErrCredentialsMissing) {
		return metav1.ConditionFalse, v1alpha1.ReasonCredentialsMissing, controllerkit.ShortMessage(err.Error(), nil)
	}
	return metav1.ConditionFalse, v1alpha1.Reason(objectstore.Reason(err)), controllerkit.ShortMessage(err.Error(), nil)
}

// NextCheck is when to check again: every `every` while available; after a
// failure, `retry` (AccessDenied, BucketMissing and missing credentials only
// change when someone changes them, so they wait `every` too: no storm).
func NextCheck(reason v1alpha1.Reason, available bool, every, retry time.Duration) time.Duration {
	if available {
		return every
	}
	switch reason {
	case v1alpha1.ReasonAccessDenied, v1alpha1.ReasonBucketMissing, v1alpha1.ReasonCredentialsMissing,
		v1alpha1.Reason(objectstore.ReasonInvalidConfig):
		return max(every, retry)
	}
	return retry
}
