package notification

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/egress"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
	"github.com/mailtrace/mailtrace/internal/notify"
)

func TestDue(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	both := &v1alpha1.NotifySpec{Webhook: &v1alpha1.WebhookNotification{URL: "https://h.example"}, Email: &v1alpha1.EmailNotification{To: []v1alpha1.EmailAddress{"a@example.com"}}}
	hook := &v1alpha1.NotifySpec{Webhook: both.Webhook}
	cases := []struct {
		name     string
		finished bool
		notify   *v1alpha1.NotifySpec
		st       *v1alpha1.NotificationsStatus
		want     string
		retry    time.Duration
	}{
		{"no notify", true, nil, nil, "[]", 0},
		{"not finished yet", false, both, nil, "[]", 0},
		{"finished: both due", true, both, nil, "[webhook email]", 0},
		{"delivered webhook, email pending", true, both, &v1alpha1.NotificationsStatus{Webhook: &v1alpha1.NotificationDelivery{Delivered: true}}, "[email]", 0},
		{"first retry after the base backoff", true, hook, &v1alpha1.NotificationsStatus{Webhook: &v1alpha1.NotificationDelivery{Attempts: 1, LastAttemptTime: at(-4 * time.Second)}}, "[]", 6 * time.Second},
		{"due once the backoff passed", true, hook, &v1alpha1.NotificationsStatus{Webhook: &v1alpha1.NotificationDelivery{Attempts: 1, LastAttemptTime: at(-10 * time.Second)}}, "[webhook]", 0},
		{"backoff doubles", true, hook, &v1alpha1.NotificationsStatus{Webhook: &v1alpha1.NotificationDelivery{Attempts: 3, LastAttemptTime: at(-30 * time.Second)}}, "[]", 10 * time.Second},
		{"given up", true, hook, &v1alpha1.NotificationsStatus{Webhook: &v1alpha1.NotificationDelivery{Attempts: 8, GaveUp: true, LastAttemptTime: at(-time.Hour)}}, "[]", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mt := &v1alpha1.MessageTrace{Spec: v1alpha1.MessageTraceSpec{Notify: c.notify}}
			mt.Status.Notifications = c.st
			if c.finished {
				meta.SetStatusCondition(&mt.Status.Conditions, metav1.Condition{Type: "Succeeded", Status: "True", Reason: "Completed"})
			}
			due, retry := Due(mt, now, 10*time.Second, time.Minute)
			if fmt.Sprint(due) != c.want || retry != c.retry {
				t.Errorf("due %v retry %s, want %s %s", due, retry, c.want, c.retry)
			}
		})
	}
}

// Classify gives each failure its reason, a text a tenant may read, and
// whether retrying is pointless.
func TestClassify(t *testing.T) {
	refused := &notify.UnreachableError{}
	for _, tc := range []struct {
		name    string
		ch      Channel
		err     error
		reason  v1alpha1.Reason
		text    string
		givenUp bool
	}{
		{"internal destination", Webhook, &egress.NotAllowedError{Host: "127.0.0.1", Class: "loopback"}, v1alpha1.ReasonDestinationNotAllowed, "not allowed", true},
		{"non-2xx", Webhook, &notify.StatusError{Code: 500}, v1alpha1.ReasonWebhookRejected, "webhook answered HTTP 500 (Internal Server Error)", false},
		{"unreachable", Webhook, refused, v1alpha1.ReasonWebhookUnreachable, "could not be reached", false},
		{"recipient", Email, &grants.RecipientNotAllowedError{Recipient: "x@evil.example", Namespace: "team-a"}, v1alpha1.ReasonRecipientNotAllowed, "x@evil.example", true},
		{"secret", Webhook, fmt.Errorf("%w: Secret hook not found", errSecretMissing), v1alpha1.ReasonSecretMissing, "Secret hook", false},
		{"no relay", Email, permanent{errNoRelay}, v1alpha1.ReasonNoSMTPRelay, "--smtp-relay", true},
		{"relay refused", Email, errors.New("MAIL FROM: 550 no"), v1alpha1.ReasonEmailFailed, "550", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, text, perm := Classify(tc.ch, tc.err)
			if reason != tc.reason || !strings.Contains(text, tc.text) || perm != tc.givenUp {
				t.Errorf("Classify = %s, %q, %v; want %s, containing %q, %v", reason, text, perm, tc.reason, tc.text, tc.givenUp)
			}
		})
	}
}
