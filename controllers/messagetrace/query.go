package messagetrace

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// BuildQuery maps a spec and its resolved range to a store query, and checks
// it as every store would: an error here means the spec cannot run (what
// CEL could not check: an open range that ends before it starts or spans
// more than 90 days, a pattern with a control character).
func BuildQuery(spec *v1alpha1.MessageTraceSpec, start, end time.Time) (mailflow.Query, error) {
	q := mailflow.Query{
		Start:          start,
		End:            end,
		MessageID:      spec.MessageID,
		MessageTraceID: spec.MessageTraceID,
		Direction:      mailflow.Direction(spec.Direction),
	}
	for _, a := range spec.SenderAddresses {
		q.Senders = append(q.Senders, string(a))
	}
	for _, a := range spec.RecipientAddresses {
		q.Recipients = append(q.Recipients, string(a))
	}
	for _, s := range spec.DeliveryStatuses {
		q.Statuses = append(q.Statuses, mailflow.Status(s))
	}
	for _, f := range []struct {
		name string
		in   v1alpha1.IPOrCIDR
		out  *netip.Prefix
	}{
		{"originalClientIP", spec.OriginalClientIP, &q.OriginalClientIP},
		{"fromIP", spec.FromIP, &q.FromIP},
		{"toIP", spec.ToIP, &q.ToIP},
	} {
		p, err := mailflow.ParsePrefix(string(f.in))
		if err != nil {
			return mailflow.Query{}, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.out = p
	}
	if spec.Subject != nil {
		q.Subject = spec.Subject.Value
		q.SubjectMatch = mailflow.SubjectMatch(spec.Subject.Match)
	}
	if err := q.Validate(); err != nil {
		return mailflow.Query{}, err
	}
	return q, nil
}
