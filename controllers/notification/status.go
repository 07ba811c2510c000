package notification

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
)

// Channel names a notification channel.
type Channel string

// Channels.
const (
	Webhook Channel = "webhook"
	Email   Channel = "email"
)

// Due says which channels of a finished trace should be attempted at now,
// and when to look again (zero: nothing left to do). A channel is pending
// while it is asked for, not delivered and not given up; it is due once the
// backoff after its last attempt has passed.
func Due(mt *v1alpha1.MessageTrace, now time.Time, backoff, maxBackoff time.Duration) (due []Channel, retryIn time.Duration) {
	if mt.Spec.Notify == nil || !mt.IsFinished() {
		return nil, 0
	}
	check := func(c Channel, asked bool, d *v1alpha1.NotificationDelivery) {
		if !asked || (d != nil && (d.Delivered || d.GaveUp)) {
			return
		}
		if d == nil || d.LastAttemptTime == nil {
			due = append(due, c)
			return
		}
		next := d.LastAttemptTime.Add(controllerkit.Backoff(d.Attempts, backoff, maxBackoff))
		if !next.After(now) {
			due = append(due, c)
			return
		}
		if w := next.Sub(now); retryIn == 0 || w < retryIn {
			retryIn = w
		}
	}
	var st v1alpha1.NotificationsStatus
	if mt.Status.Notifications != nil {
		st = *mt.Status.Notifications
	}
	check(Webhook, mt.Spec.Notify.Webhook != nil, st.Webhook)
	check(Email, mt.Spec.Notify.Email != nil, st.Email)
	return due, retryIn
}

// Pending reports whether any asked-for channel is neither delivered nor given up.
func Pending(mt *v1alpha1.MessageTrace) bool {
	due, retry := Due(mt, time.Time{}, 0, 0)
	return len(due) > 0 || retry > 0
}

// Outcome is Succeeded or Failed, with the deciding condition's reason and message.
func Outcome(mt *v1alpha1.MessageTrace) (outcome, reason, message string) {
	if c := meta.FindStatusCondition(mt.Status.Conditions, string(v1alpha1.ConditionSucceeded)); c != nil && c.Status == "True" {
		return "Succeeded", c.Reason, c.Message
	}
	if c := meta.FindStatusCondition(mt.Status.Conditions, string(v1alpha1.ConditionFailed)); c != nil {
		return "Failed", c.Reason, c.Message
	}
	return "Unknown", "", ""
}
