package messagetrace

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/store"
)

// storeAnswered sets StoreAvailable after the store answered a trace: True,
// with reason ReplicaLagging when the answer came from a read replica
// further behind its primary than allowed (or whose lag cannot be told).
func (r *Reconciler) storeAnswered(ctx context.Context, t *run) {
	reason, msg := v1alpha1.ReasonStoreAvailable, "the trace store answered"
	if l, ok := r.Store.(store.ReplicaLagger); ok {
		lag, err := l.ReplicaLag(ctx)
		if err != nil {
			log.FromContext(ctx).Info("the read replica's lag could not be measured", "error", err.Error())
		}
		reason, msg = ReplicaCondition(lag, err, l.MaxReplicaLag())
	}
	r.setCondition(t, v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, reason, msg)
}

// ReplicaCondition is StoreAvailable's reason and message for an answer
// read from a replica lagging by lag (err: it could not be measured),
// given the most the operator accepts.
func ReplicaCondition(lag time.Duration, err error, maxLag time.Duration) (v1alpha1.Reason, string) {
	switch {
	case err != nil:
		return v1alpha1.ReasonReplicaLagging, "the trace store answered from a read replica whose lag could not be measured: the newest messages may be missing"
	case lag > maxLag:
		return v1alpha1.ReasonReplicaLagging, fmt.Sprintf("the trace store answered from a read replica %s behind its primary (more than %s): "+
			"the newest messages may be missing; run the trace again later for them", lag.Round(time.Second), maxLag)
	default:
		return v1alpha1.ReasonStoreAvailable, "the trace store answered"
	}
}
