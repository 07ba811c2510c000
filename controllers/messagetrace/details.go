package messagetrace

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Bounds of a details answer in status.
const (
	// MaxDetailEvents is the most events status.details holds.
	MaxDetailEvents = 200
	// MaxDetailText is the most characters of an event's detail and SMTP response.
	MaxDetailText = 512
	// MaxDetailBytes is the byte budget of the events (their JSON).
	MaxDetailBytes = 128 << 10
)

// details answers spec.details: the recipient's event timeline, read within
// the namespace's scope (set by the scope phase), instead of rows. A trace
// without spec.details passes through.
func (r *Reconciler) details(ctx context.Context, t *run) (*ctrl.Result, error) {
	d := t.mt.Spec.Details
	if d == nil {
		return nil, nil
	}
	st := &t.mt.Status
	if st.StartTime == nil {
		st.StartTime = ptrTime(t.now)
	}
	qctx, cancel := context.WithTimeout(ctx, t.opts.QueryTimeout)
	defer cancel()
	evs, err := r.Store.ScopedEvents(qctx, t.query.Scope, d.MessageTraceID, d.Recipient)
	if err != nil {
		return r.storeFailed(ctx, t, err)
	}
	st.Details = DetailsOf(d.MessageTraceID, d.Recipient, OfRecipient(d.Recipient, evs), MaxDetailEvents, MaxDetailBytes)
	st.CompletionTime = ptrTime(t.now)
	st.ObservedGeneration = t.mt.Generation
	r.setCondition(t, v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, v1alpha1.ReasonStoreAvailable, "the trace store answered")
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, DetailsMessage(st.Details))
	r.setCondition(t, v1alpha1.ConditionFailed, metav1.ConditionFalse, v1alpha1.ReasonCompleted, "the trace has its answer")
	return ttlResult(t), nil
}

// DetailsMessage is the Succeeded condition's message of a details answer.
func DetailsMessage(d *v1alpha1.MessageDetailsStatus) string {
	switch {
	case d.TotalEvents == 0:
		return fmt.Sprintf("no events of message %s for %s (unknown, pruned, not one of its recipients, or not within this namespace's grants)", d.MessageTraceID, d.Recipient)
	case d.Truncated:
		return fmt.Sprintf("%d events of message %s for %s, the latest %d shown", d.TotalEvents, d.MessageTraceID, d.Recipient, len(d.Events))
	}
	return fmt.Sprintf("%d events of message %s for %s, all shown", d.TotalEvents, d.MessageTraceID, d.Recipient)
}

// OfRecipient is the timeline of recipient among a message's events (the
// store's Events: the message-level ones and the recipient's own): none
// when recipient is not one of the message's, whose message-level events
// alone would read as that address's timeline. An empty recipient asks for
// the message-level events.
func OfRecipient(recipient string, evs []mailflow.Event) []mailflow.Event {
	if recipient == "" {
		return evs
	}
	r := mailflow.NormalizeAddress(recipient)
	for i := range evs {
		if mailflow.NormalizeAddress(evs[i].Recipient) == r {
			return evs
		}
	}
	return nil
}

// ToMessageEvent converts a store event, cutting its long texts.
func ToMessageEvent(e mailflow.Event) v1alpha1.MessageEvent {
	detail := TruncateRunes(e.Detail, MaxDetailText)
	resp := TruncateRunes(e.SMTPResponse, MaxDetailText)
	return v1alpha1.MessageEvent{
		Time:           metav1.NewTime(e.Time.UTC()),
		Event:          string(e.Type),
		Detail:         detail,
		Source:         e.Source,
		ServerHostname: e.ServerHostname,
		ServerIP:       e.ServerIP,
		ClientHostname: e.ClientHostname,
		ClientIP:       e.ClientIP,
		Relay:          e.Relay,
		DSN:            e.DSN,
		SMTPResponse:   resp,
		FromIP:         e.FromIP,
		ToIP:           e.ToIP,
		ExpandedFrom:   e.ExpandedFrom,
		Truncated:      detail != e.Detail || resp != e.SMTPResponse,
	}
}

// DetailsOf is the bounded timeline of evs, oldest first: at most maxEvents
// events whose JSON fits maxBytes; when some must go, the latest are kept
// (they hold the outcome).
func DetailsOf(traceID, recipient string, evs []mailflow.Event, maxEvents, maxBytes int) *v1alpha1.MessageDetailsStatus {
	sorted := append([]mailflow.Event(nil), evs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Time.Before(sorted[j].Time) })
	out := &v1alpha1.MessageDetailsStatus{MessageTraceID: traceID, Recipient: recipient, TotalEvents: int32(len(sorted))}
	var kept []v1alpha1.MessageEvent
	used := 0
	for i := len(sorted) - 1; i >= 0 && len(kept) < maxEvents; i-- {
		ev := ToMessageEvent(sorted[i])
		b, _ := json.Marshal(ev)
		if used+len(b) > maxBytes {
			break
		}
		used += len(b)
		kept = append(kept, ev)
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	out.Events = kept
	out.Truncated = len(kept) < len(sorted)
	return out
}
