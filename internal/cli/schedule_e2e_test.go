package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/demo"
	"github.com/mailtrace/mailtrace/internal/notify"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/smtptest"
)

// End to end through NewManager: a MessageTraceSchedule's run-now
// annotation creates a run, the MessageTrace controller answers it from a
// seeded SQLite store, and the notification controller posts a signed
// webhook (verified by the loopback receiver) and sends an email through the
// --smtp-relay (a loopback SMTP server); the schedule and the run record it.
func TestScheduleRunIsTracedAndNotified(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := kubetest.Start()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trace.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Append(ctx, demo.Generate(time.Now().UTC())); err != nil {
		t.Fatal(err)
	}

	hooks := make(chan notify.Document, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte("hook-key"), r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var d notify.Document
		_ = json.Unmarshal(body, &d)
		hooks <- d
	}))
	defer receiver.Close()
	relay := smtptest.Start(t)

	mgr, err := NewManager(env.Config, st, ManagerOptions{
		MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		Notify:  NotifyOptions{SMTPRelay: relay.Addr, SMTPFrom: "mailtrace@example.com"},
		Tenancy: TenancyDisabled, // one team; tenancy has its own tests
		// The webhook receiver is on loopback, which is refused unless granted.
		AllowDestinations: []string{"127.0.0.0/8"},
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		mcancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	ns := kubetest.Namespace(t, env.Client)
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"},
		Data: map[string][]byte{"secret": []byte("hook-key")}}); err != nil {
		t.Fatal(err)
	}
	s := &v1alpha1.MessageTraceSchedule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "failed-weekly", Annotations: map[string]string{v1alpha1.AnnotationRunNow: "first"}},
		Spec: v1alpha1.MessageTraceScheduleSpec{
			Schedule: "0 6 * * 1", TimeZone: "Europe/Berlin", Window: metav1.Duration{Duration: 7 * 24 * time.Hour},
			Template: v1alpha1.MessageTraceTemplate{Spec: v1alpha1.MessageTraceSpec{
				DeliveryStatuses: []v1alpha1.DeliveryStatus{"Failed"},
				Notify: &v1alpha1.NotifySpec{
					Webhook: &v1alpha1.WebhookNotification{URL: receiver.URL, SecretRef: &v1alpha1.SecretKeyRef{Name: "hook"}},
					Email:   &v1alpha1.EmailNotification{To: []v1alpha1.EmailAddress{"postmaster@example.com"}},
				},
			}},
		},
	}
	if err := env.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}

	var run v1alpha1.MessageTrace
	kubetest.Eventually(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		var list v1alpha1.MessageTraceList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelSchedule: s.Name}); err != nil {
			return false, err.Error()
		}
		if len(list.Items) != 1 {
			return false, fmt.Sprintf("%d runs", len(list.Items))
		}
		run = list.Items[0]
		n := run.Status.Notifications
		return run.IsFinished() && n != nil && n.Webhook != nil && n.Webhook.Delivered && n.Email != nil && n.Email.Delivered,
			fmt.Sprintf("run %s: phase %s, notifications %+v", run.Name, run.Status.Phase, n)
	})
	if run.Status.Phase != v1alpha1.PhaseSucceeded || run.Status.TotalMatches == 0 || run.Status.Counts == nil || run.Status.Counts.Failed != run.Status.TotalMatches {
		t.Errorf("run %s: phase %s, %d matches, counts %+v: want the failed messages of the last 7 days", run.Name, run.Status.Phase, run.Status.TotalMatches, run.Status.Counts)
	}
	if d := run.Spec.EndTime.Sub(run.Spec.StartTime.Time); d != 7*24*time.Hour {
		t.Errorf("run range %s", d)
	}
	select {
	case d := <-hooks:
		if d.Trace.Name != run.Name || d.Schedule != s.Name || d.Outcome != "Succeeded" || d.TotalMatches != run.Status.TotalMatches {
			t.Errorf("webhook document %+v", d)
		}
	default:
		t.Error("no verified webhook request")
	}
	mails := relay.Wait(1, 10*time.Second)
	if len(mails) != 1 || mails[0].To[0] != "postmaster@example.com" || !strings.Contains(mails[0].Data, "Subject: [mailtrace] "+ns+"/"+run.Name+" succeeded") {
		t.Errorf("emails %+v", mails)
	}
	kubetest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := &v1alpha1.MessageTraceSchedule{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(s), got); err != nil {
			return false, err.Error()
		}
		return got.Status.LastRunNowToken == "first" && got.Status.LastSuccessfulTime != nil && len(got.Status.Active) == 0 && got.Status.NextScheduleTime != nil,
			fmt.Sprintf("schedule status %+v", got.Status)
	})
}
