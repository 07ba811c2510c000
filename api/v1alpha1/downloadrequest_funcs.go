package v1alpha1

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Download request defaults.
const (
	// DefaultDownloadTTL is how long a download URL is valid without spec.ttl.
	DefaultDownloadTTL = 10 * time.Minute
	// MaxDownloadTTL is the longest spec.ttl.
	MaxDownloadTTL = time.Hour
)

// ValidFor is the URL's validity: spec.ttl, or DefaultDownloadTTL.
func (s *DownloadRequestSpec) ValidFor() time.Duration {
	if s.TTL == nil || s.TTL.Duration <= 0 {
		return DefaultDownloadTTL
	}
	return min(s.TTL.Duration, MaxDownloadTTL)
}

// Condition returns the request's condition of type t, or nil.
func (d *DownloadRequest) Condition(t ConditionType) *metav1.Condition {
	return meta.FindStatusCondition(d.Status.Conditions, string(t))
}

// Blocked returns the Ready condition of a pending request that cannot be
// answered until someone acts (the report's store is missing or
// misconfigured), or nil; mayClear says whether the cause may also go away
// by itself. A request waiting for its trace (ReportPending) is blocked when
// the trace is: see MessageTrace.Blocked.
func (d *DownloadRequest) Blocked() (c *metav1.Condition, mayClear bool) {
	if d.Status.Phase != "" && d.Status.Phase != DownloadPending {
		return nil, false
	}
	return blockedCondition(d.Condition(ConditionReady))
}
