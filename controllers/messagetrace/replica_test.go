package messagetrace

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

func TestReplicaCondition(t *testing.T) {
	for _, c := range []struct {
		name   string
		lag    time.Duration
		err    error
		reason v1alpha1.Reason
		says   string
	}{
		{"caught up", 0, nil, v1alpha1.ReasonStoreAvailable, "answered"},
		{"behind, within the limit", 30 * time.Second, nil, v1alpha1.ReasonStoreAvailable, "answered"},
		{"behind, past the limit", 95 * time.Second, nil, v1alpha1.ReasonReplicaLagging, "1m35s behind its primary (more than 30s)"},
		{"cannot tell", 0, errors.New("no transaction replayed"), v1alpha1.ReasonReplicaLagging, "could not be measured"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reason, msg := ReplicaCondition(c.lag, c.err, 30*time.Second)
			if reason != c.reason || !strings.Contains(msg, c.says) {
				t.Errorf("ReplicaCondition(%v, %v) = %s %q; want %s, saying %q", c.lag, c.err, reason, msg, c.reason, c.says)
			}
		})
	}
}
