package v1alpha1

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultWindow is the range traced when the spec names none.
const DefaultWindow = 48 * time.Hour

// MaxRange is the longest range a trace may cover.
const MaxRange = 90 * 24 * time.Hour

// DefaultResultLimit is the number of rows status holds when the spec says nothing.
const DefaultResultLimit = 500

// ResolveTimeRange turns the spec's time filters into an absolute range.
// Relative ranges (Window, or nothing: the last 48 hours) and an open-ended
// StartTime end at `anchor`, the trace's creation time, so that the answer
// does not depend on when the controller happens to run it.
func (s *MessageTraceSpec) ResolveTimeRange(anchor time.Time) (start, end time.Time) {
	anchor = anchor.UTC()
	switch {
	case s.StartTime != nil && s.EndTime != nil:
		return s.StartTime.UTC(), s.EndTime.UTC()
	case s.StartTime != nil:
		return s.StartTime.UTC(), anchor
	case s.Window != nil:
		return anchor.Add(-s.Window.Duration), anchor
	default:
		return anchor.Add(-DefaultWindow), anchor
	}
}

// Limit returns the result row limit with its default applied.
func (s *MessageTraceSpec) Limit() int {
	if s.ResultLimit <= 0 {
		return DefaultResultLimit
	}
	return int(s.ResultLimit)
}

// IsFinished reports whether the trace reached a terminal state: it is
// never run again.
func (mt *MessageTrace) IsFinished() bool {
	return meta.IsStatusConditionTrue(mt.Status.Conditions, string(ConditionSucceeded)) ||
		meta.IsStatusConditionTrue(mt.Status.Conditions, string(ConditionFailed))
}

// Condition returns the condition of the given type, or nil.
func (mt *MessageTrace) Condition(t ConditionType) *metav1.Condition {
	return meta.FindStatusCondition(mt.Status.Conditions, string(t))
}

// Add records one more row of the given status.
func (c *StatusCounts) Add(status DeliveryStatus, n int64) {
	switch status {
	case "Delivered":
		c.Delivered += n
	case "Pending":
		c.Pending += n
	case "Expanded":
		c.Expanded += n
	case "Failed":
		c.Failed += n
	case "Quarantined":
		c.Quarantined += n
	case "FilteredAsSpam":
		c.FilteredAsSpam += n
	case "GettingStatus":
		c.GettingStatus += n
	}
}
