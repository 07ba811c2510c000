package v1alpha1

import (
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	"github.com/mailtrace/mailtrace/internal/duration"
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

// parseWindow reads a window as the API accepts it: a Go duration (48h, or
// 168h0m0s as metav1.Duration writes it) or days (7d, 1d12h), which
// metav1.Duration alone cannot read. The CRDs' rules use the same grammar
// (internal/duration.Pattern), so an object the API server accepted always
// decodes.
func parseWindow(raw json.RawMessage) (*metav1.Duration, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &s); err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	d, err := duration.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	return &metav1.Duration{Duration: d}, nil
}

// UnmarshalJSON reads the spec as the API machinery does, and its window in
// days too (window: 7d).
func (s *MessageTraceSpec) UnmarshalJSON(b []byte) error {
	type plain MessageTraceSpec
	aux := struct {
		*plain
		Window json.RawMessage `json:"window,omitempty"` // shadows plain's
	}{plain: (*plain)(s)}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, &aux); err != nil {
		return err
	}
	if len(aux.Window) == 0 { // absent: left as it was, as for every field
		return nil
	}
	w, err := parseWindow(aux.Window)
	if err != nil {
		return err
	}
	s.Window = w
	return nil
}

// blockedReasons are the reasons of a False Succeeded condition (and of a
// DownloadRequest's False Ready condition) with which the object waits for
// something only a person can give it: a report store that exists, is
// configured and passes its checks. The value says whether the cause may
// also clear by itself (a ReportStore not checked yet, or unreachable for a
// moment).
var blockedReasons = map[Reason]bool{
	ReasonReportRequired:         false,
	ReasonReportStoreNotFound:    false,
	ReasonNoDefaultReportStore:   false,
	ReasonCredentialsMissing:     false,
	ReasonBucketMissing:          false,
	ReasonAccessDenied:           false,
	ReasonQuotaExceeded:          false,
	ReasonReportStoreUnavailable: true,
	ReasonStoreUnreachable:       true,
}

// Blocked returns the Succeeded condition of a trace that is not finished
// and cannot progress until someone acts (see the reasons above), or nil;
// mayClear says whether the cause may also go away by itself. The trace
// itself keeps waiting (it goes on once the cause is fixed); a client
// waiting for its answer should stop and say why.
func (mt *MessageTrace) Blocked() (c *metav1.Condition, mayClear bool) {
	if mt.IsFinished() {
		return nil, false
	}
	return blockedCondition(mt.Condition(ConditionSucceeded))
}

func blockedCondition(c *metav1.Condition) (*metav1.Condition, bool) {
	if c == nil || c.Status != metav1.ConditionFalse {
		return nil, false
	}
	mayClear, ok := blockedReasons[Reason(c.Reason)]
	if !ok {
		return nil, false
	}
	return c, mayClear
}
