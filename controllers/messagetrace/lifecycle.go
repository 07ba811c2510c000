package messagetrace

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/objectstore"
)

// Finalizer deletes a trace's report with it (report.deletionPolicy Delete).
const Finalizer = "mailtrace.io/report"

// ensureFinalizer adds the finalizer to a trace whose report is deleted with it.
func (r *Reconciler) ensureFinalizer(ctx context.Context, mt *v1alpha1.MessageTrace) error {
	if !WantsFinalizer(&mt.Spec) || controllerutil.ContainsFinalizer(mt, Finalizer) {
		return nil
	}
	orig := mt.DeepCopy()
	controllerutil.AddFinalizer(mt, Finalizer)
	return r.Client.Patch(ctx, mt, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}

// expire deletes a finished trace once its ttlSecondsAfterFinished has passed.
func (r *Reconciler) expire(ctx context.Context, mt *v1alpha1.MessageTrace) (ctrl.Result, error) {
	due, wait, ok := TTLDue(mt.Status.CompletionTime, mt.Spec.TTLSecondsAfterFinished, r.now())
	if !ok {
		return ctrl.Result{}, nil
	}
	if !due {
		return ctrl.Result{RequeueAfter: max(wait, time.Second)}, nil
	}
	log.FromContext(ctx).Info("deleting the finished trace: its ttlSecondsAfterFinished has passed")
	err := r.Client.Delete(ctx, mt, client.Preconditions{UID: &mt.UID}, client.PropagationPolicy("Background"))
	return ctrl.Result{}, client.IgnoreNotFound(err)
}

// finalize deletes the report of a trace being deleted, then lets it go. It
// never holds the trace for long: when the ReportStore is gone, or deleting
// keeps failing for Options.DeletionTimeout, it gives up with a Warning Event.
func (r *Reconciler) finalize(ctx context.Context, mt *v1alpha1.MessageTrace) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(mt, Finalizer) {
		r.pool.Forget(mt.UID)
		return ctrl.Result{}, nil
	}
	r.pool.Forget(mt.UID) // cancel a running export: its upload is aborted
	o := r.Options.withDefaults()
	rep := mt.Status.Report
	if rep != nil {
		err := r.deleteReport(ctx, mt)
		switch {
		case err == nil:
			r.event(mt, eventNormal, "ReportDeleted", fmt.Sprintf("deleted s3://%s/%s (deletionPolicy Delete)", rep.Bucket, rep.Key))
		case apierrors.IsNotFound(err):
			r.event(mt, eventWarning, "ReportNotDeleted", fmt.Sprintf(
				"ReportStore %s is gone: s3://%s/%s is left as it is", rep.Store, rep.Bucket, rep.Key))
		case GiveUpDeleting(mt.DeletionTimestamp, r.now(), o.DeletionTimeout):
			r.event(mt, eventWarning, "ReportNotDeleted", controllerkit.ShortMessage(fmt.Sprintf(
				"gave up deleting s3://%s/%s after %s", rep.Bucket, rep.Key, o.DeletionTimeout), err))
		default:
			log.FromContext(ctx).Info("deleting the report failed; retrying", "error", err.Error())
			return ctrl.Result{RequeueAfter: min(o.RetryBackoff*4, o.DeletionTimeout)}, nil
		}
	}
	orig := mt.DeepCopy()
	controllerutil.RemoveFinalizer(mt, Finalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Patch(ctx, mt, client.MergeFrom(orig)))
}

// deleteReport deletes the report object and any incomplete upload of its
// key. A NotFound error means the trace's ReportStore is gone.
func (r *Reconciler) deleteReport(ctx context.Context, mt *v1alpha1.MessageTrace) error {
	var os objectstore.Store
	if mt.Status.Report.Store == "" {
		if r.DefaultReportStore == nil || r.DefaultReportStore.Store == nil {
			return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("reportstores").GroupResource(), "(default)")
		}
		os = r.DefaultReportStore.Store
	} else {
		rs := &v1alpha1.ReportStore{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: mt.Namespace, Name: mt.Status.Report.Store}, rs); err != nil {
			return err
		}
		if rs.DeletionTimestamp != nil {
			return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("reportstores").GroupResource(), rs.Name)
		}
		var err error
		if os, err = r.openStore(ctx, rs); err != nil {
			return err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	key := reportKey(mt)
	if err := os.AbortIncomplete(dctx, key); err != nil {
		return err
	}
	return os.Delete(dctx, key)
}

func (r *Reconciler) event(mt *v1alpha1.MessageTrace, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(mt, nil, typ, reason, "Report", "%s", msg)
	}
}
