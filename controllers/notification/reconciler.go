// Package notification is the controller that tells the outside world that
// a MessageTrace finished: it watches finished traces whose spec.notify is
// set and not yet delivered, sends a signed webhook and/or an email, retries
// with backoff, and records delivery in status.notifications (a merge patch
// of that field only, under an optimistic lock; after a conflict the trace
// is read again and only that field is set again). A failing notification
// never changes the trace's outcome.
package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/egress"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
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
	// DefaultEmailsPerHour and DefaultEmailBurst bound each namespace's
	// email notifications through the operator's relay.
	DefaultEmailsPerHour = 60
	DefaultEmailBurst    = 20
)

// Options tune the retries. Zero values take the defaults.
type Options struct {
	MaxAttempts int32
	Backoff     time.Duration
	MaxBackoff  time.Duration
	SendTimeout time.Duration
	// EmailsPerHour and EmailBurst: each namespace's email rate limit.
	EmailsPerHour float64
	EmailBurst    int
}

func (o Options) withDefaults() Options {
	controllerkit.Default(&o.MaxAttempts, DefaultMaxAttempts)
	controllerkit.Default(&o.Backoff, DefaultBackoff)
	controllerkit.Default(&o.MaxBackoff, DefaultMaxBackoff)
	controllerkit.Default(&o.SendTimeout, DefaultSendTimeout)
	controllerkit.Default(&o.EmailsPerHour, DefaultEmailsPerHour)
	controllerkit.Default(&o.EmailBurst, DefaultEmailBurst)
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
// (default: the manager's API reader, so Secrets are never cached); after a
// conflicting status write the trace is read again with APIReader (default:
// the manager's API reader, so the copy is the newest).
// Mailer nil means no SMTP relay was configured: email notifications are
// recorded as given up with that reason. Grants decides which destinations
// and recipients a namespace may use; the manager always sets it, and a
// Reconciler without one (nil) is unrestricted. Webhook nil sends through
// a notify.Webhook whose connections go through the namespace's guard.
type Reconciler struct {
	Client       client.Client
	SecretReader client.Reader
	APIReader    client.Reader
	Webhook      WebhookSender
	Mailer       MailSender
	Grants       *grants.Resolver
	Recorder     events.EventRecorder
	Clock        clock.PassiveClock
	Options      Options

	mu     sync.Mutex
	limits map[string]*rate.Limiter // per namespace, emails
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces,verbs=get;list;watch
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// SetupWithManager registers the controller: only finished traces with a
// pending notification are reconciled.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	controllerkit.Default(&r.Client, mgr.GetClient())
	controllerkit.Default(&r.SecretReader, mgr.GetAPIReader())
	controllerkit.Default(&r.APIReader, mgr.GetAPIReader())
	controllerkit.Default[events.EventRecorder](&r.Recorder, mgr.GetEventRecorder(ControllerName))
	controllerkit.Default[clock.PassiveClock](&r.Clock, clock.RealClock{})
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
	var limited time.Duration
	for _, ch := range due {
		if ch == Email {
			if wait := r.emailWait(mt.Namespace, now, o); wait > 0 {
				// Over the namespace's rate: not an attempt, just later.
				notifications.WithLabelValues(string(ch), "rate_limited").Inc()
				limited = wait
				continue
			}
		}
		rec := r.record(mt, ch)
		sendCtx, cancel := context.WithTimeout(ctx, o.SendTimeout)
		err := r.send(sendCtx, mt, ch, doc)
		cancel()
		rec.Attempts++
		rec.LastAttemptTime = &metav1.Time{Time: now}
		if err == nil {
			rec.Delivered, rec.LastError, rec.Reason, rec.DeliveredTime = true, "", "", &metav1.Time{Time: now}
			notifications.WithLabelValues(string(ch), "delivered").Inc()
			r.Recorder.Eventf(mt, nil, corev1.EventTypeNormal, "NotificationDelivered", "Notify", "%s notification delivered", ch)
			continue
		}
		reason, msg, perm := Classify(ch, err)
		rec.Reason, rec.LastError = reason, controllerkit.ShortMessage(msg, nil)
		// The cause in full for the operator's log; status and Events get
		// the fixed text above (a tenant reads them).
		ctrl.LoggerFrom(ctx).Info("notification attempt failed", "channel", ch, "reason", reason, "error", errors.Unwrap(err))
		if perm || rec.Attempts >= o.MaxAttempts {
			rec.GaveUp = true
			notifications.WithLabelValues(string(ch), "failed").Inc()
			r.Recorder.Eventf(mt, nil, corev1.EventTypeWarning, "NotificationFailed", "Notify", "%s notification given up after %d attempt(s): %s", ch, rec.Attempts, rec.LastError)
		} else {
			notifications.WithLabelValues(string(ch), "retrying").Inc()
			r.Recorder.Eventf(mt, nil, corev1.EventTypeWarning, "NotificationRetrying", "Notify", "%s notification attempt %d failed: %s", ch, rec.Attempts, rec.LastError)
		}
	}
	// Only status.notifications differs from orig, so the merge patch
	// carries that field alone: the trace's outcome is never touched. The
	// attempts are made and cannot be decided again, so a conflict (someone
	// wrote the trace meanwhile) reads the trace again and sets these
	// records on it, whatever else it now says.
	records := mt.Status.Notifications.DeepCopy()
	if err := controllerkit.PatchStatus(ctx, r.Client, orig, mt, controllerkit.OnConflictReread(r.APIReader, func() error {
		mt.Status.Notifications = records.DeepCopy()
		return nil
	})); err != nil {
		return controllerkit.AfterWrite(ctrl.Result{}, nil, fmt.Errorf("record notification delivery: %w", err))
	}
	_, retryIn = Due(mt, now, o.Backoff, o.MaxBackoff)
	if limited > 0 && (retryIn == 0 || limited < retryIn) {
		retryIn = limited
	}
	return ctrl.Result{RequeueAfter: retryIn}, nil
}

// emailWait takes one email from the namespace's budget, or says how long
// until there is one (and takes nothing).
func (r *Reconciler) emailWait(namespace string, now time.Time, o Options) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limits == nil {
		r.limits = map[string]*rate.Limiter{}
	}
	l := r.limits[namespace]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(o.EmailsPerHour/3600), o.EmailBurst)
		r.limits[namespace] = l
	}
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
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
			var err error
			if secret, err = r.secretKey(ctx, mt.Namespace, ref.Name, keyOr(ref.Key, "secret")); err != nil {
				return err
			}
		}
		url := wh.URL
		if ref := wh.URLSecretRef; ref != nil {
			b, err := r.secretKey(ctx, mt.Namespace, ref.Name, keyOr(ref.Key, "url"))
			if err != nil {
				return err
			}
			url = strings.TrimSpace(string(b))
			if u, err := neturl.Parse(url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
				return permanent{fmt.Errorf("the URL in Secret %s (key %q) is not an http or https URL", ref.Name, keyOr(ref.Key, "url"))}
			}
		}
		sender := r.Webhook
		if sender == nil {
			guard, err := r.Grants.Guard(ctx, mt.Namespace)
			if err != nil {
				return err
			}
			sender = &notify.Webhook{Client: guard.Client(0), UserAgent: "mailtrace-notification"}
		}
		return sender.Send(ctx, url, secret, string(mt.UID), doc)
	case Email:
		if r.Mailer == nil {
			return permanent{errNoRelay}
		}
		to := make([]string, 0, len(mt.Spec.Notify.Email.To))
		for _, a := range mt.Spec.Notify.Email.To {
			to = append(to, string(a))
		}
		if err := r.Grants.CheckRecipients(ctx, mt.Namespace, to); err != nil {
			var rna *grants.RecipientNotAllowedError
			if errors.As(err, &rna) {
				return permanent{err}
			}
			return err
		}
		subject, body := notify.FormatEmail(doc)
		return r.Mailer.Send(ctx, to, subject, body)
	}
	return permanent{fmt.Errorf("unknown channel %s", ch)}
}

var errNoRelay = errors.New("no SMTP relay is configured: start the manager with --smtp-relay and --smtp-from")

// errSecretMissing marks a missing Secret or key.
var errSecretMissing = errors.New("secret missing")

func keyOr(key, def string) string {
	if key == "" {
		return def
	}
	return key
}

// secretKey reads one key of a Secret of the namespace. Its errors name the
// Secret and the key, never the value.
func (r *Reconciler) secretKey(ctx context.Context, namespace, name, key string) ([]byte, error) {
	var s corev1.Secret
	if err := r.SecretReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %s not found", errSecretMissing, name)
		}
		return nil, fmt.Errorf("read Secret %s: %w", name, err)
	}
	if v := s.Data[key]; len(v) > 0 {
		return v, nil
	}
	return nil, fmt.Errorf("%w: Secret %s has no key %q", errSecretMissing, name, key)
}

// Classify turns a failed attempt into its reason, the text status and
// Events may show, and whether retrying is pointless.
func Classify(ch Channel, err error) (reason v1alpha1.Reason, message string, permanentErr bool) {
	var perm permanent
	permanentErr = errors.As(err, &perm)
	var (
		se  *notify.StatusError
		ue  *notify.UnreachableError
		rna *grants.RecipientNotAllowedError
	)
	switch {
	case errors.Is(err, egress.ErrNotAllowed):
		// Only an administrator's grant changes this.
		return v1alpha1.ReasonDestinationNotAllowed, err.Error(), true
	case errors.As(err, &rna):
		return v1alpha1.ReasonRecipientNotAllowed, err.Error(), true
	case errors.Is(err, errSecretMissing):
		return v1alpha1.ReasonSecretMissing, err.Error(), permanentErr
	case errors.Is(err, errNoRelay):
		return v1alpha1.ReasonNoSMTPRelay, err.Error(), true
	case errors.As(err, &se):
		return v1alpha1.ReasonWebhookRejected, se.Error(), permanentErr
	case errors.As(err, &ue):
		return v1alpha1.ReasonWebhookUnreachable, ue.Error(), permanentErr
	case ch == Email:
		return v1alpha1.ReasonEmailFailed, err.Error(), permanentErr
	}
	return v1alpha1.ReasonWebhookUnreachable, err.Error(), permanentErr
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
