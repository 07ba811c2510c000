// Package notification is the controller that tells the outside world that
// a MessageTrace finished: it watches finished traces whose spec.notify is
// set and not yet delivered, sends a signed webhook and/or an email, retries
// with backoff, and records delivery in status.notifications (a merge patch
// of that field only). A failing notification never changes the trace's
// outcome.
package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/notify"
)

// ControllerName names the controller and its Events' reporting controller.
const ControllerName = "notification"

// Defaults of Options.
const (
	DefaultMaxAttempts = 8
	DefaultBackoff     = 10 * time.Second
	DefaultMaxBackoff  = 10 * time.Minute
	DefaultSendTimeout = 20 * time.Second
)

// Options tune the retries. Zero values take the defaults.
type Options struct {
	MaxAttempts int32
	Backoff     time.Duration
	MaxBackoff  time.Duration
	SendTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	return o
}

// WebhookSender posts a document (notify.Webhook).
type WebhookSender interface {
	Send(ctx context.Context, url string, secret []byte, deliveryID string, doc *notify.Document) error
}

// MailSender sends an email (notify.Mailer).
type MailSender interface {
	Send(ctx context.Context, to []string, subject, body string) error
}

// Reconciler delivers notifications. Secrets are read with SecretReader
// (default: the manager's API reader, so Secrets are never cached).
// Mailer nil means no SMTP relay was configured: email notifications are
// recorded as given up with that reason.
type Reconciler struct {
	Client       client.Client
	SecretReader client.Reader
	Webhook      WebhookSender
	Mailer       MailSender
	Recorder     events.EventRecorder
	Clock        clock.PassiveClock
	Options      Options
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces,verbs=get;list;watch
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// SetupWithManager registers the controller: only finished traces with a
// pending notification are reconciled.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.SecretReader == nil {
		r.SecretReader = mgr.GetAPIReader()
	}
	if r.Webhook == nil {
		r.Webhook = &notify.Webhook{UserAgent: "mailtrace-notification"}
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(ControllerName)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	pending := predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return needs(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return needs(e.ObjectNew) },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(e event.GenericEvent) bool { return needs(e.Object) },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.MessageTrace{}, builder.WithPredicates(pending)).
		Complete(r)
}

func needs(o client.Object) bool {
	mt, ok := o.(*v1alpha1.MessageTrace)
	return ok && mt.DeletionTimestamp.IsZero() && Pending(mt)
}

// Reconcile attempts every due channel once and records the results.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	o := r.Options.withDefaults()
	mt := &v1alpha1.MessageTrace{}
	if err := r.Client.Get(ctx, req.NamespacedName, mt); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.Clock.Now()
	due, retryIn := Due(mt, now, o.Backoff, o.MaxBackoff)
	if len(due) == 0 {
		return ctrl.Result{RequeueAfter: retryIn}, nil
	}
	orig := mt.DeepCopy()
	if mt.Status.Notifications == nil {
		mt.Status.Notifications = &v1alpha1.NotificationsStatus{}
	}
	doc, err := Document(mt)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, ch := range due {
		rec := r.record(mt, ch)
		sendCtx, cancel := context.WithTimeout(ctx, o.SendTimeout)
		err := r.send(sendCtx, mt, ch, doc)
		cancel()
		rec.Attempts++
		rec.LastAttemptTime = &metav1.Time{Time: now}
		if err == nil {
			rec.Delivered, rec.LastError, rec.DeliveredTime = true, "", &metav1.Time{Time: now}
			notifications.WithLabelValues(string(ch), "delivered").Inc()
			r.Recorder.Eventf(mt, nil, corev1.EventTypeNormal, "NotificationDelivered", "Notify", "%s notification delivered", ch)
			continue
		}
		rec.LastError = shorten(err.Error())
		var perm permanent
		if errors.As(err, &perm) || rec.Attempts >= o.MaxAttempts {
			rec.GaveUp = true
			notifications.WithLabelValues(string(ch), "failed").Inc()
			r.Recorder.Eventf(mt, nil, corev1.EventTypeWarning, "NotificationFailed", "Notify", "%s notification given up after %d attempt(s): %s", ch, rec.Attempts, rec.LastError)
		} else {
			notifications.WithLabelValues(string(ch), "retrying").Inc()
			r.Recorder.Eventf(mt, nil, corev1.EventTypeWarning, "NotificationRetrying", "Notify", "%s notification attempt %d failed: %s", ch, rec.Attempts, rec.LastError)
		}
	}
	// Only status.notifications differs from orig, so the merge patch
	// carries that field alone: the trace's outcome is never touched.
	if err := r.Client.Status().Patch(ctx, mt, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("record notification delivery: %w", err)
	}
	_, retryIn = Due(mt, now, o.Backoff, o.MaxBackoff)
	return ctrl.Result{RequeueAfter: retryIn}, nil
}

func (r *Reconciler) record(mt *v1alpha1.MessageTrace, ch Channel) *v1alpha1.NotificationDelivery {
	st := mt.Status.Notifications
	p := &st.Webhook
	if ch == Email {
		p = &st.Email
	}
	if *p == nil {
		*p = &v1alpha1.NotificationDelivery{}
	}
	return *p
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func (r *Reconciler) send(ctx context.Context, mt *v1alpha1.MessageTrace, ch Channel, doc *notify.Document) error {
	switch ch {
	case Webhook:
		wh := mt.Spec.Notify.Webhook
		var secret []byte
		if ref := wh.SecretRef; ref != nil {
			key := ref.Key
			if key == "" {
				key = "secret"
			}
			var s corev1.Secret
			if err := r.SecretReader.Get(ctx, client.ObjectKey{Namespace: mt.Namespace, Name: ref.Name}, &s); err != nil {
				return fmt.Errorf("webhook secret %s: %w", ref.Name, err)
			}
			if secret = s.Data[key]; len(secret) == 0 {
				return fmt.Errorf("webhook secret %s has no key %q", ref.Name, key)
			}
		}
		return r.Webhook.Send(ctx, wh.URL, secret, string(mt.UID), doc)
	case Email:
		if r.Mailer == nil {
			return permanent{errors.New("no SMTP relay is configured: start the manager with --smtp-relay and --smtp-from")}
		}
		to := make([]string, 0, len(mt.Spec.Notify.Email.To))
		for _, a := range mt.Spec.Notify.Email.To {
			to = append(to, string(a))
		}
		subject, body := notify.FormatEmail(doc)
		return r.Mailer.Send(ctx, to, subject, body)
	}
	return permanent{fmt.Errorf("unknown channel %s", ch)}
}

// Document is the notification of a finished trace. The report reference is
// status.report as it is, read generically so that it follows that field.
func Document(mt *v1alpha1.MessageTrace) (*notify.Document, error) {
	outcome, reason, msg := Outcome(mt)
	d := &notify.Document{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "MessageTraceNotification",
		Trace:    notify.TraceRef{Namespace: mt.Namespace, Name: mt.Name, UID: string(mt.UID)},
		Schedule: mt.Labels[v1alpha1.LabelSchedule],
		Outcome:  outcome, Reason: reason, Message: msg,
		TotalMatches: mt.Status.TotalMatches, Truncated: mt.Status.Truncated,
	}
	if tr := mt.Status.TimeRange; tr != nil {
		s, e := tr.Start.UTC(), tr.End.UTC()
		d.Start, d.End = &s, &e
	}
	if c := mt.Status.CompletionTime; c != nil {
		t := c.UTC()
		d.CompletionTime = &t
	}
	if c := mt.Status.Counts; c != nil {
		b, _ := json.Marshal(c)
		_ = json.Unmarshal(b, &d.Counts)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(mt)
	if err != nil {
		return nil, err
	}
	if st, ok := u["status"].(map[string]any); ok && st["report"] != nil {
		if d.Report, err = json.Marshal(st["report"]); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func shorten(s string) string {
	if len(s) > 512 {
		return s[:512] + "…"
	}
	return s
}
