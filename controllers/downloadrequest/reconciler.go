// Package downloadrequest is the DownloadRequest controller: it answers a
// request for a MessageTrace's report with a short-lived presigned URL in
// the request's status (never on the MessageTrace), and deletes the request
// some time after the URL expired.
package downloadrequest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/reportstore"
)

// ControllerName names the controller.
const ControllerName = "downloadrequest"

// Defaults.
const (
	// DefaultKeep is how long a request is kept after its URL expired (or after it failed).
	DefaultKeep = time.Hour
	// DefaultPendingRecheck is how often a request waiting for a report looks again.
	DefaultPendingRecheck = 2 * time.Second
)

// Reconciler answers DownloadRequests. Client, APIReader and Clock default to
// the manager's client, uncached reader and the real clock.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader
	Clock     clock.PassiveClock
	// DefaultReportStore is the operator-wide report store (nil: none), the
	// one the MessageTrace controller writes to.
	DefaultReportStore *reportstore.Default
	// Grants decides which ReportStore endpoints each namespace may reach (nil: unrestricted).
	Grants *grants.Resolver
	// NewObjectStore opens a ReportStore's object store (objectstore.New when nil).
	NewObjectStore func(objectstore.Config) (objectstore.Store, error)
	// Keep is how long a request is kept after expiry (DefaultKeep when zero).
	Keep time.Duration
	// PendingRecheck is how often a request waiting for a report looks again.
	PendingRecheck time.Duration
}

// +kubebuilder:rbac:groups=mailtrace.io,resources=downloadrequests,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=mailtrace.io,resources=downloadrequests/status,verbs=get;patch
// +kubebuilder:rbac:groups=mailtrace.io,resources=messagetraces,verbs=get;list;watch
// +kubebuilder:rbac:groups=mailtrace.io,resources=reportstores,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	controllerkit.Default(&r.Client, mgr.GetClient())
	controllerkit.Default(&r.APIReader, mgr.GetAPIReader())
	controllerkit.Default[clock.PassiveClock](&r.Clock, clock.RealClock{})
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.DownloadRequest{}).
		Complete(r)
}

// Reconcile issues, expires or deletes one request; status is written once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dr := &v1alpha1.DownloadRequest{}
	if err := r.Client.Get(ctx, req.NamespacedName, dr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if dr.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now().UTC()
	orig := dr.DeepCopy()
	step, wait := Lifecycle(&dr.Status, dr.CreationTimestamp.Time, now, r.keep())
	res := ctrl.Result{RequeueAfter: wait}
	switch step {
	case StepDelete:
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, dr, client.Preconditions{UID: &dr.UID}))
	case StepWait:
		return res, nil
	case StepExpire:
		dr.Status.Phase = v1alpha1.DownloadExpired
		dr.Status.DownloadURL = ""
		r.setReady(dr, now, metav1.ConditionFalse, v1alpha1.ReasonURLExpired, "the download URL expired; create another DownloadRequest")
	case StepIssue:
		var err error
		if res, err = r.issue(ctx, dr, now); err != nil {
			return ctrl.Result{}, err
		}
	}
	if equality.Semantic.DeepEqual(orig.Status, dr.Status) {
		return res, nil
	}
	// A conflict requeues: the request is read again and decided again.
	return controllerkit.AfterWrite(res, nil, controllerkit.PatchStatus(ctx, r.Client, orig, dr))
}

// issue looks the trace's report up and presigns a GET of it.
func (r *Reconciler) issue(ctx context.Context, dr *v1alpha1.DownloadRequest, now time.Time) (ctrl.Result, error) {
	recheck := r.PendingRecheck
	controllerkit.Default(&recheck, DefaultPendingRecheck)
	pending := func(reason v1alpha1.Reason, msg string) (ctrl.Result, error) {
		dr.Status.Phase = v1alpha1.DownloadPending
		r.setReady(dr, now, metav1.ConditionFalse, reason, msg)
		return ctrl.Result{RequeueAfter: recheck}, nil
	}
	failed := func(reason v1alpha1.Reason, msg string) (ctrl.Result, error) {
		dr.Status.Phase = v1alpha1.DownloadFailed
		r.setReady(dr, now, metav1.ConditionFalse, reason, msg)
		step, wait := Lifecycle(&dr.Status, dr.CreationTimestamp.Time, now, r.keep())
		if step == StepDelete {
			wait = time.Second
		}
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	mt := &v1alpha1.MessageTrace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: dr.Namespace, Name: dr.Spec.MessageTraceName}, mt); err != nil {
		if apierrors.IsNotFound(err) {
			return failed(v1alpha1.ReasonMessageTraceNotFound, fmt.Sprintf(
				"MessageTrace %s/%s does not exist: a DownloadRequest names a MessageTrace of its own namespace", dr.Namespace, dr.Spec.MessageTraceName))
		}
		return ctrl.Result{}, err
	}
	if reason, msg, terminal := ReportProblem(mt); reason != "" {
		if terminal {
			return failed(reason, msg)
		}
		return pending(reason, msg)
	}
	rep := mt.Status.Report
	os, prefix, bucket, err := r.open(ctx, mt.Namespace, rep.Store)
	if err != nil {
		var w *waitErr
		if errors.As(err, &w) {
			return pending(w.reason, w.msg)
		}
		return ctrl.Result{}, err
	}
	if bucket != rep.Bucket {
		return failed(v1alpha1.ReasonReportNotFound, fmt.Sprintf(
			"the report is in bucket %s, and its store now points at bucket %s", rep.Bucket, bucket))
	}
	key := RelativeKey(prefix, rep.Key)
	if _, err := os.Stat(ctx, key); err != nil {
		if errors.Is(err, objectstore.ErrNotFound) {
			return failed(v1alpha1.ReasonReportNotFound, fmt.Sprintf("the report object %s/%s is gone from its store", rep.Bucket, rep.Key))
		}
		return pending(v1alpha1.Reason(objectstore.Reason(err)), controllerkit.ShortMessage("the report store did not answer", err))
	}
	ttl := dr.Spec.ValidFor()
	url, err := os.PresignGet(ctx, key, ttl)
	if err != nil {
		return pending(v1alpha1.Reason(objectstore.Reason(err)), controllerkit.ShortMessage("presigning the download failed", err))
	}
	exp := metav1.NewTime(now.Add(ttl))
	dr.Status.Phase = v1alpha1.DownloadReady
	dr.Status.DownloadURL = url
	dr.Status.Expiration = &exp
	dr.Status.Report = &v1alpha1.DownloadedReport{Rows: rep.Rows, Bytes: rep.Bytes, SHA256: rep.SHA256, ContentEncoding: rep.ContentEncoding, Type: rep.Type}
	r.setReady(dr, now, metav1.ConditionTrue, v1alpha1.ReasonURLIssued,
		fmt.Sprintf("download URL valid for %s, until %s", ttl, exp.UTC().Format(time.RFC3339)))
	return ctrl.Result{RequeueAfter: ttl}, nil
}

type waitErr struct {
	reason v1alpha1.Reason
	msg    string
}

func (e *waitErr) Error() string { return e.msg }

// open returns the object store holding a report: the named ReportStore of
// the namespace (opened as the MessageTrace controller opens it), or the
// operator's default.
func (r *Reconciler) open(ctx context.Context, ns, name string) (os objectstore.Store, prefix, bucket string, err error) {
	if name == "" {
		d := r.DefaultReportStore
		if d == nil || d.Store == nil {
			return nil, "", "", &waitErr{v1alpha1.ReasonNoDefaultReportStore, "the report is in the operator's default report store, and the operator has none (--default-report-store-bucket)"}
		}
		return d.Store, d.Prefix, d.Bucket, nil
	}
	rs := &v1alpha1.ReportStore{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rs); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", "", &waitErr{v1alpha1.ReasonReportStoreNotFound, fmt.Sprintf("ReportStore %s/%s, which holds the report, does not exist", ns, name)}
		}
		return nil, "", "", err
	}
	os, err = reportstore.Open(ctx, r.APIReader, rs, r.NewObjectStore, r.Grants)
	if err != nil {
		if errors.Is(err, reportstore.ErrCredentialsMissing) {
			return nil, "", "", &waitErr{v1alpha1.ReasonCredentialsMissing, controllerkit.ShortMessage("ReportStore "+name, err)}
		}
		return nil, "", "", err
	}
	return os, rs.Spec.Prefix, rs.Spec.Bucket, nil
}

func (r *Reconciler) keep() time.Duration {
	keep := r.Keep
	controllerkit.Default(&keep, DefaultKeep)
	return keep
}

func (r *Reconciler) setReady(dr *v1alpha1.DownloadRequest, now time.Time, s metav1.ConditionStatus, reason v1alpha1.Reason, msg string) {
	dr.Status.ObservedGeneration = dr.Generation
	controllerkit.SetCondition(&dr.Status.Conditions, dr.Generation, now, v1alpha1.ConditionReady, s, reason, msg)
}
