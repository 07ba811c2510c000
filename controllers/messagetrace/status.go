package messagetrace

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The decisions of the controller, as pure functions (table-tested in status_test.go).

// MaxSubjectRunes is how much of a subject a status row keeps.
const MaxSubjectRunes = 256

// MaxFolderRunes is how much of a mailbox folder's name a status row keeps
// (Dovecot's own limit on a mailbox name is 255 bytes per level).
const MaxFolderRunes = 256

// PhaseOf derives the printer-column phase from the conditions.
func PhaseOf(conds []metav1.Condition) v1alpha1.Phase {
	switch {
	case meta.IsStatusConditionTrue(conds, string(v1alpha1.ConditionSucceeded)):
		return v1alpha1.PhaseSucceeded
	case meta.IsStatusConditionTrue(conds, string(v1alpha1.ConditionFailed)):
		return v1alpha1.PhaseFailed
	}
	if c := meta.FindStatusCondition(conds, string(v1alpha1.ConditionSucceeded)); c != nil {
		switch v1alpha1.Reason(c.Reason) {
		case v1alpha1.ReasonReportRequired, v1alpha1.ReasonReportStoreNotFound, v1alpha1.ReasonNoDefaultReportStore,
			v1alpha1.ReasonReportStoreUnavailable, v1alpha1.ReasonCredentialsMissing:
			return v1alpha1.PhasePending // waiting for someone to provide a report store
		}
		// Running, retrying the store, exporting, retrying an export.
		return v1alpha1.PhaseRunning
	}
	return v1alpha1.PhasePending
}

// IsTerminal reports whether a store error ends the trace for good (the
// store refused the query) rather than being retried (the store could not
// be reached, timed out, or broke down).
func IsTerminal(err error) bool {
	return errors.Is(err, mailflow.ErrInvalidQuery)
}

// RowBytes is a row's share of the status object: its JSON plus a separator.
func RowBytes(r v1alpha1.TraceRow) int {
	b, err := json.Marshal(r)
	if err != nil {
		return 0
	}
	return len(b) + 1
}

// FitRows keeps the first rows (newest first) that fit both the row limit
// and the byte budget.
func FitRows(rows []v1alpha1.TraceRow, limit, maxBytes int) []v1alpha1.TraceRow {
	if limit < len(rows) {
		rows = rows[:max(limit, 0)]
	}
	used := 0
	for i, r := range rows {
		used += RowBytes(r)
		if used > maxBytes {
			return rows[:i]
		}
	}
	return rows
}

// TruncateRunes cuts s to at most n characters (runes), never inside one.
func TruncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// FormatDuration renders a range for reading: 48h, 240h, 90m, 1h30m, 45s.
func FormatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		s := (d / time.Minute * time.Minute).String() // "1h30m0s" or "30m0s"
		return strings.TrimSuffix(s, "0s")
	}
	return d.Round(time.Second).String()
}

// ToRow turns a store row into a status row (subject cut to 256 characters).
func ToRow(r mailflow.Row) v1alpha1.TraceRow {
	return v1alpha1.TraceRow{
		Received:       metav1.NewTime(r.Received.UTC()),
		Sender:         r.Sender,
		Recipient:      r.Recipient,
		Subject:        TruncateRunes(r.Subject, MaxSubjectRunes),
		Status:         v1alpha1.DeliveryStatus(r.Status),
		MessageID:      r.MessageID,
		MessageTraceID: r.MessageTraceID,
		Size:           r.Size,
		FromIP:         r.FromIP,
		ToIP:           r.ToIP,
		Direction:      v1alpha1.Direction(r.Direction),
		Folder:         TruncateRunes(r.Folder, MaxFolderRunes),
	}
}

// CountsOf turns the store's counts into status counts.
func CountsOf(c mailflow.Counts) *v1alpha1.StatusCounts {
	out := &v1alpha1.StatusCounts{}
	for s, n := range c.ByStatus {
		out.Add(v1alpha1.DeliveryStatus(s), n)
	}
	return out
}

// Event is one Kubernetes Event the controller emits on a transition.
type Event struct {
	Type    string // corev1.EventTypeNormal or corev1.EventTypeWarning
	Reason  string
	Message string
}

const (
	eventNormal  = "Normal"
	eventWarning = "Warning"
)

// Transitions lists the Events that the change from old to cur deserves:
// Started when the trace first runs, StoreUnavailable when the store stops
// answering, ReportRequired, Succeeded and Failed when they become true.
func Transitions(old, cur *v1alpha1.MessageTraceStatus) []Event {
	var out []Event
	if old.StartTime == nil && cur.StartTime != nil {
		out = append(out, Event{eventNormal, "Started", "Running the trace against the store"})
	}
	if became(old.Conditions, cur.Conditions, v1alpha1.ConditionStoreAvailable, metav1.ConditionFalse) {
		c := meta.FindStatusCondition(cur.Conditions, string(v1alpha1.ConditionStoreAvailable))
		out = append(out, Event{eventWarning, string(v1alpha1.ReasonStoreUnavailable), c.Message + "; retrying with backoff"})
	}
	if c := meta.FindStatusCondition(cur.Conditions, string(v1alpha1.ConditionSucceeded)); c != nil &&
		c.Reason == string(v1alpha1.ReasonReportRequired) && c.Status == metav1.ConditionFalse {
		if o := meta.FindStatusCondition(old.Conditions, string(v1alpha1.ConditionSucceeded)); o == nil || o.Reason != c.Reason {
			out = append(out, Event{eventWarning, string(v1alpha1.ReasonReportRequired), c.Message})
		}
	}
	if became(old.Conditions, cur.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue) {
		out = append(out, Event{eventNormal, "Succeeded", fmt.Sprintf("%d matches, %d shown", cur.TotalMatches, cur.ReturnedRows)})
	}
	if became(old.Conditions, cur.Conditions, v1alpha1.ConditionFailed, metav1.ConditionTrue) {
		c := meta.FindStatusCondition(cur.Conditions, string(v1alpha1.ConditionFailed))
		out = append(out, Event{eventWarning, "Failed", c.Reason + ": " + c.Message})
	}
	return out
}

func became(old, cur []metav1.Condition, t v1alpha1.ConditionType, s metav1.ConditionStatus) bool {
	c := meta.FindStatusCondition(cur, string(t))
	if c == nil || c.Status != s {
		return false
	}
	o := meta.FindStatusCondition(old, string(t))
	return o == nil || o.Status != s
}

// Outcome names a finished reconcile for the traces_total metric, or "" when
// the change from old to cur finishes nothing.
func Outcome(old, cur *v1alpha1.MessageTraceStatus) string {
	switch {
	case became(old.Conditions, cur.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue):
		return "succeeded"
	case became(old.Conditions, cur.Conditions, v1alpha1.ConditionFailed, metav1.ConditionTrue):
		return "failed"
	}
	oc := meta.FindStatusCondition(old.Conditions, string(v1alpha1.ConditionSucceeded))
	cc := meta.FindStatusCondition(cur.Conditions, string(v1alpha1.ConditionSucceeded))
	if cc != nil && cc.Reason == string(v1alpha1.ReasonReportRequired) && (oc == nil || oc.Reason != cc.Reason) {
		return "report_required"
	}
	return ""
}

// NextCursor is where the page after the first kept rows of page starts:
// the store's own cursor when every row was kept, the cursor after the last
// kept row when status had to cut some, and none when nothing was kept or
// nothing follows.
func NextCursor(page mailflow.Page, kept int) mailflow.Cursor {
	switch {
	case kept <= 0:
		return ""
	case kept >= len(page.Rows):
		return page.Next
	}
	return mailflow.NewCursor(page.Rows[kept-1])
}
