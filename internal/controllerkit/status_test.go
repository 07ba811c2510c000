package controllerkit

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m, nil) }

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// patchCounter is a client whose status patches are counted: how many were
// sent and how many the API server refused with Conflict.
type patchCounter struct {
	client.Client
	sent, conflicts int
}

func countPatches(t *testing.T, env *kubetest.Env) *patchCounter {
	t.Helper()
	ww, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	pc := &patchCounter{}
	pc.Client = interceptor.NewClient(ww, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			pc.sent++
			err := c.SubResource(sub).Patch(ctx, obj, p, opts...)
			if apierrors.IsConflict(err) {
				pc.conflicts++
			}
			return err
		},
	})
	return pc
}

// newTrace creates a MessageTrace (any object with a status subresource will
// do: nothing reconciles it here) and returns it as read.
func newTrace(t *testing.T, c client.Client, ns string) *v1alpha1.MessageTrace {
	t.Helper()
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "t"},
		Spec: v1alpha1.MessageTraceSpec{Window: &metav1.Duration{Duration: time.Hour}}}
	if err := c.Create(tctx(t), mt); err != nil {
		t.Fatal(err)
	}
	return mt
}

// otherWriter writes the trace's outcome, as another controller would,
// after the copy under test was read.
func otherWriter(t *testing.T, c client.Client, key client.ObjectKey) {
	t.Helper()
	cur := &v1alpha1.MessageTrace{}
	if err := c.Get(tctx(t), key, cur); err != nil {
		t.Fatal(err)
	}
	orig := cur.DeepCopy()
	SetCondition(&cur.Status.Conditions, cur.Generation, time.Now(), v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, "written by the other writer")
	if err := PatchStatus(tctx(t), c, orig, cur); err != nil {
		t.Fatalf("the other writer's write: %v", err)
	}
}

func succeeded(mt *v1alpha1.MessageTrace) bool {
	c := meta.FindStatusCondition(mt.Status.Conditions, string(v1alpha1.ConditionSucceeded))
	return c != nil && c.Status == metav1.ConditionTrue && c.Message == "written by the other writer"
}

// A status write made from a copy read before someone else wrote is refused
// with Conflict (and writes nothing); AfterWrite turns that into a requeue,
// and the requeued reconcile, reading afresh, writes the right status,
// keeping what the other writer wrote.
func TestStaleStatusWriteIsRefusedThenRequeued(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	c := countPatches(t, env)
	stale := newTrace(t, env.Client, ns)
	key := client.ObjectKeyFromObject(stale)

	// reconcile is a controller's reconcile in miniature: decide on the
	// copy it has, write once, hand the write's error to AfterWrite.
	reconcileWith := func(mt *v1alpha1.MessageTrace) (reconcile.Result, error) {
		orig := mt.DeepCopy()
		mt.Status.Attempts++
		SetCondition(&mt.Status.Conditions, mt.Generation, time.Now(), v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, v1alpha1.ReasonStoreAvailable, "checked")
		return AfterWrite(reconcile.Result{}, nil, PatchStatus(tctx(t), c, orig, mt))
	}

	otherWriter(t, env.Client, key)
	res, err := reconcileWith(stale)
	if err != nil || res.RequeueAfter != ConflictRequeue {
		t.Fatalf("the stale write gave %+v, %v; want a requeue after %s and no error", res, err, ConflictRequeue)
	}
	if c.sent != 1 || c.conflicts != 1 {
		t.Fatalf("%d status patches sent, %d refused; want 1 sent and refused", c.sent, c.conflicts)
	}
	got := &v1alpha1.MessageTrace{}
	if err := env.Client.Get(tctx(t), key, got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Attempts != 0 || meta.FindStatusCondition(got.Status.Conditions, string(v1alpha1.ConditionStoreAvailable)) != nil || !succeeded(got) {
		t.Fatalf("the refused write changed the status: %+v", got.Status)
	}

	// The requeued reconcile reads the object again and writes.
	if res, err := reconcileWith(got); err != nil || res != (reconcile.Result{}) {
		t.Fatalf("the requeued reconcile gave %+v, %v", res, err)
	}
	final := &v1alpha1.MessageTrace{}
	if err := env.Client.Get(tctx(t), key, final); err != nil {
		t.Fatal(err)
	}
	if final.Status.Attempts != 1 || !meta.IsStatusConditionTrue(final.Status.Conditions, string(v1alpha1.ConditionStoreAvailable)) || !succeeded(final) {
		t.Errorf("final status %+v", final.Status)
	}
	if c.sent != 2 || c.conflicts != 1 {
		t.Errorf("%d status patches sent, %d refused; want 2 and 1", c.sent, c.conflicts)
	}
}

// With OnConflictReread, a refused write reads the object again, makes its
// change again on the fresh copy and writes it at once: the other writer's
// status (the trace's outcome) stays, and only the field of this writer is
// set (the notification controller's case).
func TestStaleStatusWriteIsRereadAndRetried(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	c := countPatches(t, env)
	mt := newTrace(t, env.Client, ns)
	key := client.ObjectKeyFromObject(mt)
	otherWriter(t, env.Client, key)

	orig := mt.DeepCopy()
	sent := metav1.NewTime(time.Now().Truncate(time.Second))
	record := &v1alpha1.NotificationsStatus{Webhook: &v1alpha1.NotificationDelivery{Attempts: 1, Delivered: true, DeliveredTime: &sent, LastAttemptTime: &sent}}
	mt.Status.Notifications = record.DeepCopy()
	redone := 0
	err := PatchStatus(tctx(t), c, orig, mt, OnConflictReread(env.Client, func() error {
		redone++
		if !succeeded(mt) {
			t.Errorf("redo was called on a copy without the other writer's outcome: %+v", mt.Status)
		}
		mt.Status.Notifications = record.DeepCopy()
		return nil
	}))
	if err != nil {
		t.Fatalf("PatchStatus: %v", err)
	}
	if c.sent != 2 || c.conflicts != 1 || redone != 1 {
		t.Errorf("%d status patches sent, %d refused, redo called %d times; want 2, 1, 1", c.sent, c.conflicts, redone)
	}
	final := &v1alpha1.MessageTrace{}
	if err := env.Client.Get(tctx(t), key, final); err != nil {
		t.Fatal(err)
	}
	if !succeeded(final) {
		t.Errorf("the other writer's outcome was clobbered: %+v", final.Status.Conditions)
	}
	if n := final.Status.Notifications; n == nil || n.Webhook == nil || !n.Webhook.Delivered || n.Webhook.Attempts != 1 {
		t.Errorf("notifications %+v", n)
	}
	if final.ResourceVersion != mt.ResourceVersion {
		t.Errorf("the object given to PatchStatus is at %s, the server at %s", mt.ResourceVersion, final.ResourceVersion)
	}
}
