package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotifySpec says who is told when a trace finishes.
// +kubebuilder:validation:XValidation:rule="has(self.webhook) || has(self.email)",message="notify needs a webhook or an email (or both)"
type NotifySpec struct {
	// Webhook receives an HTTP POST of a small JSON document.
	// +optional
	Webhook *WebhookNotification `json:"webhook,omitempty"`
	// Email is sent through the SMTP relay configured at install.
	// +optional
	Email *EmailNotification `json:"email,omitempty"`
}

// WebhookNotification is an HTTP(S) endpoint told of the outcome. With a
// secret, each request carries X-Mailtrace-Timestamp (unix seconds) and
// X-Mailtrace-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">,
// so the receiver can check who sent it and refuse replays.
//
// The manager refuses a URL whose host resolves to an internal address
// (loopback, link-local, private, ...) unless a cluster administrator grants
// it (TracePolicy spec.destinations); only the answer's HTTP status code is
// recorded, never its body.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.urlSecretRef)",message="set exactly one of url and urlSecretRef"
type WebhookNotification struct {
	// URL to POST to (http or https).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || url(self).getScheme() == 'http') && url(self).getHostname() != ''",message="url must be an http or https URL, such as https://hooks.example.com/mailtrace"
	// +optional
	URL string `json:"url,omitempty"`
	// URLSecretRef names the key of a Secret in the trace's namespace
	// holding the URL, for URLs that carry a token (Slack, Teams) and must
	// not be in Git.
	// +optional
	URLSecretRef *URLSecretKeyRef `json:"urlSecretRef,omitempty"`
	// SecretRef names the key of a Secret in the trace's namespace holding
	// the HMAC secret. Without it requests are not signed.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
}

// SecretKeyRef names one key of a Secret in the same namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data (default "secret").
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=secret
	// +optional
	Key string `json:"key,omitempty"`
}

// URLSecretKeyRef names the key of a Secret in the same namespace that holds a URL.
type URLSecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data (default "url").
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=url
	// +optional
	Key string `json:"key,omitempty"`
}

// EmailAddress is a plain address such as ops@example.com.
// +kubebuilder:validation:MaxLength=320
// +kubebuilder:validation:XValidation:rule="self.matches('^[^@\\\\s<>,;]+@[^@\\\\s<>,;]+$')",message="must be a plain address such as ops@example.com"
type EmailAddress string

// EmailNotification is a short email with the outcome, the counts and the
// report's location.
type EmailNotification struct {
	// To: the recipients.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	To []EmailAddress `json:"to"`
}

// NotificationsStatus records each channel's delivery.
type NotificationsStatus struct {
	// Webhook delivery.
	// +optional
	Webhook *NotificationDelivery `json:"webhook,omitempty"`
	// Email delivery.
	// +optional
	Email *NotificationDelivery `json:"email,omitempty"`
}

// NotificationDelivery is where one channel's delivery stands.
type NotificationDelivery struct {
	// Delivered is true once the receiver accepted the notification.
	Delivered bool `json:"delivered"`
	// Attempts made so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Reason of the last failed attempt, a stable CamelCase word
	// (DestinationNotAllowed, RecipientNotAllowed, WebhookRejected, ...).
	// +optional
	Reason Reason `json:"reason,omitempty"`
	// LastError of the last failed attempt (cut to 512 bytes). It never
	// holds what the receiver answered beyond its HTTP status code.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// LastAttemptTime is when the last attempt was made.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`
	// DeliveredTime is when the receiver accepted it.
	// +optional
	DeliveredTime *metav1.Time `json:"deliveredTime,omitempty"`
	// GaveUp is true when the attempts ran out; nothing more is tried.
	// +optional
	GaveUp bool `json:"gaveUp,omitempty"`
}
