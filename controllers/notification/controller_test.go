package notification

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/notify"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	kubetest.Main(m, nil)
}

type mails struct {
	mu   sync.Mutex
	sent []string
}

func (m *mails) Send(_ context.Context, to []string, subject, body string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, fmt.Sprint(to)+" "+subject+"\n"+body)
	return nil
}

func start(t *testing.T, env *kubetest.Env, ns string, r *Reconciler) {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// finishedTrace creates a trace and marks it finished as the MessageTrace
// controller would (it does not run here).
func finishedTrace(t *testing.T, c client.Client, ns, name string, notifySpec *v1alpha1.NotifySpec) *v1alpha1.MessageTrace {
	t.Helper()
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{v1alpha1.LabelSchedule: "daily"}},
		Spec: v1alpha1.MessageTraceSpec{Window: &metav1.Duration{Duration: 24 * time.Hour}, Notify: notifySpec}}
	if err := c.Create(tctx(t), mt); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	meta.SetStatusCondition(&mt.Status.Conditions, metav1.Condition{Type: "Succeeded", Status: "True", Reason: "Completed", Message: "3 matches, all shown", LastTransitionTime: now})
	meta.SetStatusCondition(&mt.Status.Conditions, metav1.Condition{Type: "Failed", Status: "False", Reason: "Completed", Message: "the trace has its answer", LastTransitionTime: now})
	mt.Status.Phase = v1alpha1.PhaseSucceeded
	mt.Status.TotalMatches = 3
	mt.Status.Counts = &v1alpha1.StatusCounts{Failed: 3}
	mt.Status.CompletionTime = &now
	mt.Status.TimeRange = &v1alpha1.TimeRange{Start: metav1.NewTime(now.Add(-24 * time.Hour)), End: now, Duration: "24h"}
	if err := c.Status().Update(tctx(t), mt); err != nil {
		t.Fatal(err)
	}
	return mt
}

func waitNotified(t *testing.T, c client.Client, mt *v1alpha1.MessageTrace, ok func(*v1alpha1.NotificationsStatus) bool) *v1alpha1.MessageTrace {
	t.Helper()
	got := &v1alpha1.MessageTrace{}
	kubetest.Eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		if err := c.Get(tctx(t), client.ObjectKeyFromObject(mt), got); err != nil {
			return false, err.Error()
		}
		n := got.Status.Notifications
		if n == nil {
			return false, "no status.notifications"
		}
		b, _ := json.Marshal(n)
		return ok(n), string(b)
	})
	return got
}

// A finished trace's webhook reaches a loopback server signed with the
// Secret's key (verified there), and its email goes to the relay; delivery
// is recorded in status and the outcome is untouched.
func TestWebhookAndEmailAreDeliveredAndRecorded(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"}, Data: map[string][]byte{"secret": []byte("k3y")}}
	if err := env.Client.Create(tctx(t), secret); err != nil {
		t.Fatal(err)
	}
	verified := make(chan notify.Document, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte("k3y"), r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var d notify.Document
		_ = json.Unmarshal(body, &d)
		verified <- d
	}))
	defer srv.Close()
	m := &mails{}
	start(t, env, ns, &Reconciler{Mailer: m})
	mt := finishedTrace(t, env.Client, ns, "daily-1", &v1alpha1.NotifySpec{
		Webhook: &v1alpha1.WebhookNotification{URL: srv.URL, SecretRef: &v1alpha1.SecretKeyRef{Name: "hook"}},
		Email:   &v1alpha1.EmailNotification{To: []v1alpha1.EmailAddress{"ops@example.com"}},
	})
	got := waitNotified(t, env.Client, mt, func(n *v1alpha1.NotificationsStatus) bool {
		return n.Webhook != nil && n.Webhook.Delivered && n.Email != nil && n.Email.Delivered
	})
	select {
	case d := <-verified:
		if d.Trace.Name != "daily-1" || d.Trace.UID != string(got.UID) || d.Outcome != "Succeeded" || d.Schedule != "daily" || d.TotalMatches != 3 || d.Counts["failed"] != 3 || d.Start == nil {
			t.Errorf("document %+v", d)
		}
	default:
		t.Fatal("the webhook was recorded delivered but no verified request arrived")
	}
	if got.Status.Notifications.Webhook.Attempts != 1 || got.Status.Notifications.Webhook.DeliveredTime == nil {
		t.Errorf("webhook record %+v", got.Status.Notifications.Webhook)
	}
	m.mu.Lock()
	if len(m.sent) != 1 {
		t.Errorf("%d emails", len(m.sent))
	}
	m.mu.Unlock()
	if !got.IsFinished() || got.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Errorf("outcome changed: %+v", got.Status.Conditions)
	}
	// Delivered once: nothing is sent again.
	time.Sleep(300 * time.Millisecond)
	if len(verified) != 0 {
		t.Error("the webhook was sent again")
	}
}

// A failing webhook is retried with backoff, then given up; the trace stays
// Succeeded. Email without a relay is given up at once with the reason.
func TestFailingWebhookNeverFailsTheTrace(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	var calls sync.WaitGroup
	calls.Add(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { recover() }() // more calls than counted would panic the WaitGroup
		calls.Done()
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer srv.Close()
	gaveUp := counterValue(notifications.WithLabelValues("webhook", "failed"))
	start(t, env, ns, &Reconciler{Options: Options{MaxAttempts: 3, Backoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	mt := finishedTrace(t, env.Client, ns, "daily-2", &v1alpha1.NotifySpec{
		Webhook: &v1alpha1.WebhookNotification{URL: srv.URL},
		Email:   &v1alpha1.EmailNotification{To: []v1alpha1.EmailAddress{"ops@example.com"}},
	})
	got := waitNotified(t, env.Client, mt, func(n *v1alpha1.NotificationsStatus) bool {
		return n.Webhook != nil && n.Webhook.GaveUp && n.Email != nil && n.Email.GaveUp
	})
	w, e := got.Status.Notifications.Webhook, got.Status.Notifications.Email
	if w.Attempts != 3 || w.Delivered || w.LastError == "" || e.Attempts != 1 || e.Delivered {
		t.Errorf("webhook %+v email %+v", w, e)
	}
	if n := counterValue(notifications.WithLabelValues("webhook", "failed")); n != gaveUp+1 {
		t.Errorf("mailtrace_notifications_total{channel=webhook,result=failed} %v, want %v", n, gaveUp+1)
	}
	if !got.IsFinished() || meta.IsStatusConditionTrue(got.Status.Conditions, string(v1alpha1.ConditionFailed)) || got.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Errorf("a failing notification changed the outcome: %+v", got.Status.Conditions)
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
