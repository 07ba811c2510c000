package messagetrace

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

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

// details answers spec.details: the timeline of one recipient, or of every
// recipient visible within the namespace's scope (set by the scope phase),
// instead of rows. A recipient that is not one of the message's fails the
// trace NotARecipient. A trace without spec.details passes through.
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
	var answer *v1alpha1.MessageDetailsStatus
	if d.Recipient != "" {
		evs, err := r.Store.ScopedEvents(qctx, t.query.Scope, d.MessageTraceID, d.Recipient)
		if err != nil {
			return r.storeFailed(ctx, t, err)
		}
		own := OfRecipient(d.Recipient, evs)
		if own == nil {
			// Not a visible recipient: when the message itself is visible, say
			// which of its recipients are (never the others).
			msg, err := r.Store.ScopedEvents(qctx, t.query.Scope, d.MessageTraceID, "")
			if err != nil {
				return r.storeFailed(ctx, t, err)
			}
			if len(msg) > 0 {
				rcpts, err := r.recipientsOf(qctx, t, d.MessageTraceID, msg)
				if err != nil {
					return r.storeFailed(ctx, t, err)
				}
				r.fail(t, v1alpha1.ReasonNotARecipient, NotARecipientMessage(d.Recipient, d.MessageTraceID, rcpts))
				return &ctrl.Result{}, nil
			}
		}
		answer = DetailsOf(d.MessageTraceID, d.Recipient, FilterEvents(own, d.Events), MaxDetailEvents, MaxDetailBytes)
	} else {
		msg, err := r.Store.ScopedEvents(qctx, t.query.Scope, d.MessageTraceID, "")
		if err != nil {
			return r.storeFailed(ctx, t, err)
		}
		var rcpts []string
		evs := OfRecipient("", msg)
		if len(msg) > 0 {
			if rcpts, err = r.recipientsOf(qctx, t, d.MessageTraceID, msg); err != nil {
				return r.storeFailed(ctx, t, err)
			}
		}
		for _, rc := range rcpts {
			re, err := r.Store.ScopedEvents(qctx, t.query.Scope, d.MessageTraceID, rc)
			if err != nil {
				return r.storeFailed(ctx, t, err)
			}
			evs = append(evs, RecipientsOwn(rc, re)...)
		}
		answer = DetailsOf(d.MessageTraceID, "", FilterEvents(evs, d.Events), MaxDetailEvents, MaxDetailBytes)
		answer.Recipients = rcpts
	}
	st.Details = answer
	st.CompletionTime = ptrTime(t.now)
	st.ObservedGeneration = t.mt.Generation
	r.setCondition(t, v1alpha1.ConditionStoreAvailable, metav1.ConditionTrue, v1alpha1.ReasonStoreAvailable, "the trace store answered")
	r.setCondition(t, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted, DetailsMessage(st.Details))
	r.setCondition(t, v1alpha1.ConditionFailed, metav1.ConditionFalse, v1alpha1.ReasonCompleted, "the trace has its answer")
	return ttlResult(t), nil
}

// MaxDetailRecipients is the most recipients whose timelines a details
// answer without a recipient reads (a message to more is cut, newest rows'
// order).
const MaxDetailRecipients = 100

// recipientsOf lists the recipients of a message visible in the trace's
// scope, in trace order: its rows in a range around its own events (rows
// are keyed by when it was received, at or before its first event).
func (r *Reconciler) recipientsOf(ctx context.Context, t *run, traceID string, msgEvents []mailflow.Event) ([]string, error) {
	end := t.now.Add(time.Hour)
	var earliest time.Time
	for _, e := range msgEvents {
		for _, at := range []time.Time{e.Time, e.Received} {
			if !at.IsZero() && (earliest.IsZero() || at.Before(earliest)) {
				earliest = at
			}
		}
	}
	if !earliest.IsZero() {
		end = earliest.UTC().Add(24 * time.Hour)
	}
	q := mailflow.Query{Start: end.Add(-mailflow.MaxRange), End: end, MessageTraceID: traceID, Scope: t.query.Scope}
	page, err := r.Store.Trace(ctx, q, "", MaxDetailRecipients)
	if err != nil {
		return nil, err
	}
	return RowRecipients(page.Rows), nil
}

// RowRecipients is the distinct recipients of rows, in their order.
func RowRecipients(rows []mailflow.Row) []string {
	var out []string
	seen := map[string]bool{}
	for _, row := range rows {
		k := mailflow.NormalizeAddress(row.Recipient)
		if row.Recipient == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, row.Recipient)
	}
	return out
}

// RecipientsOwn is the events of recipient among evs (not the message's own).
func RecipientsOwn(recipient string, evs []mailflow.Event) []mailflow.Event {
	r := mailflow.NormalizeAddress(recipient)
	var out []mailflow.Event
	for _, e := range evs {
		if e.Recipient != "" && mailflow.NormalizeAddress(e.Recipient) == r {
			out = append(out, e)
		}
	}
	return out
}

// FilterEvents keeps the events of the given types (case-insensitively);
// no types keeps every event.
func FilterEvents(evs []mailflow.Event, types []v1alpha1.EventType) []mailflow.Event {
	if len(types) == 0 {
		return evs
	}
	var out []mailflow.Event
	for _, e := range evs {
		for _, ty := range types {
			if strings.EqualFold(string(e.Type), string(ty)) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// NotARecipientMessage is the Failed condition's message of a details
// trace naming an address that is not one of the message's recipients:
// it lists the recipients visible to the namespace, never the others.
func NotARecipientMessage(recipient, traceID string, visible []string) string {
	known := "none visible to this namespace"
	if len(visible) > 0 {
		known = strings.Join(visible, ", ")
		if len(known) > 512 {
			known = TruncateRunes(known, 512) + "..."
		}
	}
	return fmt.Sprintf("%s is not a recipient of message %s (its recipients: %s); leave the recipient out for every recipient's timeline", recipient, traceID, known)
}

// DetailsMessage is the Succeeded condition's message of a details answer.
func DetailsMessage(d *v1alpha1.MessageDetailsStatus) string {
	who := d.Recipient
	if who == "" {
		who = fmt.Sprintf("its %d recipients", len(d.Recipients))
		if len(d.Recipients) == 1 {
			who = "its 1 recipient"
		}
	}
	switch {
	case d.TotalEvents == 0 && d.Recipient == "":
		return fmt.Sprintf("no events of message %s (unknown, pruned, or not within this namespace's grants)", d.MessageTraceID)
	case d.TotalEvents == 0:
		return fmt.Sprintf("no events of message %s for %s (unknown, pruned, or not within this namespace's grants)", d.MessageTraceID, d.Recipient)
	case d.Truncated:
		return fmt.Sprintf("%d events of message %s for %s, the latest %d shown", d.TotalEvents, d.MessageTraceID, who, len(d.Events))
	}
	return fmt.Sprintf("%d events of message %s for %s, all shown", d.TotalEvents, d.MessageTraceID, who)
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
	symbols, symbolsCut := spamSymbols(e.Symbols)
	return v1alpha1.MessageEvent{
		Time:           metav1.NewTime(e.Time.UTC()),
		Event:          string(e.Type),
		Recipient:      e.Recipient,
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
		SpamAction:     TruncateRunes(e.Action, maxSpamText),
		SpamScore:      TruncateRunes(e.Score, maxSpamText),
		SpamSymbols:    symbols,
		Folder:         TruncateRunes(e.Folder, MaxDetailText),
		Truncated:      detail != e.Detail || resp != e.SMTPResponse || symbolsCut,
	}
}

// maxSpamSymbols and maxSpamText bound what a scanner's verdict adds to a
// details status (the CRD's MaxItems says the same).
const (
	maxSpamSymbols = 20
	maxSpamText    = 64
)

// spamSymbols is at most maxSpamSymbols of a scanner's rules, each cut to
// maxSpamText, and whether any was cut.
func spamSymbols(in []string) ([]string, bool) {
	if len(in) == 0 {
		return nil, false
	}
	cut := len(in) > maxSpamSymbols
	out := make([]string, 0, min(len(in), maxSpamSymbols))
	for _, s := range in[:min(len(in), maxSpamSymbols)] {
		t := TruncateRunes(s, maxSpamText)
		cut = cut || t != s
		out = append(out, t)
	}
	return out, cut
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
