package notification

import (
	"context"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/notify"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

type hooks struct {
	mu    sync.Mutex
	calls int
}

func (h *hooks) Send(context.Context, string, []byte, string, *notify.Document) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	return nil
}

// The trace is written by someone else between the notification
// controller's read and its status write: the write is refused (the lock),
// the trace is read again and the delivery record set on it, so the other
// write stays, the delivery is recorded, and the webhook went out once.
func TestConflictingWriteKeepsTheOutcomeAndRecordsDelivery(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	mt := finishedTrace(t, env.Client, ns, "daily-3", &v1alpha1.NotifySpec{
		Webhook: &v1alpha1.WebhookNotification{URL: "https://hooks.example.com/x"},
	})
	ww, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	var patches, conflicts int
	c := interceptor.NewClient(ww, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if patches++; patches == 1 {
				// Meanwhile, the trace's outcome is rewritten (as the MessageTrace controller would).
				cur := &v1alpha1.MessageTrace{}
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
					return err
				}
				meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: "Succeeded", Status: "True", Reason: "Completed", Message: "rewritten meanwhile"})
				cur.Status.TotalMatches = 4
				if err := env.Client.Status().Update(ctx, cur); err != nil {
					return err
				}
			}
			err := c.SubResource(sub).Patch(ctx, obj, p, opts...)
			if apierrors.IsConflict(err) {
				conflicts++
			}
			return err
		},
	})
	h := &hooks{}
	r := &Reconciler{Client: c, SecretReader: env.Client, APIReader: env.Client, Webhook: h,
		Recorder: events.NewFakeRecorder(10), Clock: clock.RealClock{}}
	res, err := r.Reconcile(tctx(t), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mt)})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if patches != 2 || conflicts != 1 {
		t.Errorf("%d status patches, %d refused; want 2 and 1 (refused, then written on the fresh copy)", patches, conflicts)
	}
	got := &v1alpha1.MessageTrace{}
	if err := env.Client.Get(tctx(t), client.ObjectKeyFromObject(mt), got); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, "Succeeded"); c == nil || c.Message != "rewritten meanwhile" || got.Status.TotalMatches != 4 {
		t.Errorf("the other write was clobbered: %+v, totalMatches %d", got.Status.Conditions, got.Status.TotalMatches)
	}
	if n := got.Status.Notifications; n == nil || n.Webhook == nil || !n.Webhook.Delivered || n.Webhook.Attempts != 1 {
		t.Errorf("notifications %+v", n)
	}
	if h.calls != 1 || res.RequeueAfter != 0 {
		t.Errorf("webhook sent %d times, requeue after %s; want once and no requeue", h.calls, res.RequeueAfter)
	}
}
