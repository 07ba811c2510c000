package controllerkit

import (
	"context"
	"errors"
	"reflect"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// ConflictRequeue is how soon a reconcile whose status write was refused
// (Conflict) runs again: it then reads the object afresh and decides again.
const ConflictRequeue = time.Second

// PatchStatus is the status write of every controller: a merge patch of
// obj's status from orig (obj as it was read), carrying orig's
// resourceVersion as an optimistic lock. The API server refuses the write
// with Conflict when anyone changed the object since orig was read (another
// writer, or a cache that lagged behind the controller's own last write),
// so a decision taken on a stale copy is never written over a newer one.
//
// What follows a conflict: by default PatchStatus returns it, and the
// reconcile hands it to AfterWrite, which requeues it after ConflictRequeue;
// the next reconcile reads the object again and decides again. This is the
// right answer for a controller whose status is its decision (a trace, a
// schedule's ticks, a store check): re-deciding on fresh state is safe.
//
// A controller that owns one field of someone else's status, and whose
// change cannot be decided again because it records something already done
// (the notification controller: the webhook was sent), passes
// OnConflictReread: the object is read again with that (uncached) reader,
// redo makes the change again on the fresh copy, and the write is retried
// under the lock of the fresh copy, a few times (client-go's
// retry.DefaultRetry). Whatever others wrote meanwhile is kept.
func PatchStatus(ctx context.Context, c client.Client, orig, obj client.Object, opts ...Option) error {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.reader == nil {
		return patch(ctx, c, orig, obj)
	}
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := reread(ctx, o.reader, obj); err != nil {
				return err
			}
			orig = obj.DeepCopyObject().(client.Object)
			if err := o.redo(); err != nil {
				return err
			}
		}
		first = false
		return patch(ctx, c, orig, obj)
	})
}

func patch(ctx context.Context, c client.Client, orig, obj client.Object) error {
	return c.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}

// reread replaces obj (a typed object) with the object as r reads it now.
// It reads into a new object: decoding into a used one would keep fields the
// server no longer has. obj is left as it was when the read fails.
func reread(ctx context.Context, r client.Reader, obj client.Object) error {
	v := reflect.ValueOf(obj).Elem()
	fresh := reflect.New(v.Type())
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), fresh.Interface().(client.Object)); err != nil {
		return err
	}
	v.Set(fresh.Elem())
	return nil
}

// Option changes what PatchStatus does after a conflict.
type Option func(*options)

type options struct {
	reader client.Reader
	redo   func() error
}

// OnConflictReread makes PatchStatus re-read the object with r after a
// conflict, call redo to make the change again on it (redo changes the same
// object PatchStatus was given), and write again. r should read from the API
// server (the manager's API reader): a lagging cache would conflict again.
func OnConflictReread(r client.Reader, redo func() error) Option {
	return func(o *options) { o.reader, o.redo = r, redo }
}

// AfterWrite is what a reconcile returns once its status write is done:
// res and err as decided when the write succeeded; after a conflict, a
// requeue in ConflictRequeue and no error (a conflict is expected, not a
// failure: see PatchStatus); nothing when the object is gone; otherwise the
// write's error with the reconcile's.
func AfterWrite(res reconcile.Result, err, writeErr error) (reconcile.Result, error) {
	switch {
	case writeErr == nil:
		return res, err
	case apierrors.IsConflict(writeErr):
		return reconcile.Result{RequeueAfter: ConflictRequeue}, nil
	case apierrors.IsNotFound(writeErr):
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, errors.Join(err, writeErr)
}
