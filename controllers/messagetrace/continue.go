package messagetrace

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// A continue token (status.continue, spec.continue) is what a follow-up
// trace needs to answer with the next page, as a Kubernetes list's continue
// token: the earlier trace's resolved range (a relative window would
// resolve to another range at the follow-up's creation), a digest of its
// filters (a token is refused by a trace with other filters, whose rows the
// cursor does not order) and the store's cursor after its last row in
// status. It is not signed: everything in it is something the spec could
// say anyway, and the namespace's grants are applied to the follow-up as to
// any trace.
type pageToken struct {
	V int    `json:"v"`
	S int64  `json:"s"` // start, unix nanoseconds
	E int64  `json:"e"` // end, unix nanoseconds
	F string `json:"f"` // FiltersDigest
	C string `json:"c"` // the store's cursor
}

const tokenVersion = 1

// errContinue wraps every reason a continue token is refused.
var errContinue = errors.New("spec.continue")

// EncodeContinue is the token of the page after cursor of the trace of
// spec over [start, end).
func EncodeContinue(spec *v1alpha1.MessageTraceSpec, start, end time.Time, cursor mailflow.Cursor) string {
	b, _ := json.Marshal(pageToken{V: tokenVersion, S: start.UnixNano(), E: end.UnixNano(), F: FiltersDigest(spec), C: string(cursor)})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeContinue reads a token for a trace of spec: the range and cursor of
// the next page, or an error saying why the token does not fit.
func DecodeContinue(spec *v1alpha1.MessageTraceSpec, token string) (start, end time.Time, cursor mailflow.Cursor, err error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return start, end, "", fmt.Errorf("%w: not a continue token (copy status.continue of the earlier trace)", errContinue)
	}
	var p pageToken
	if err := json.Unmarshal(b, &p); err != nil || p.V != tokenVersion || p.C == "" {
		return start, end, "", fmt.Errorf("%w: not a continue token (copy status.continue of the earlier trace)", errContinue)
	}
	if p.F != FiltersDigest(spec) {
		return start, end, "", fmt.Errorf("%w: the token belongs to a trace with other filters: a follow-up page needs the same senders, recipients, statuses and other filters", errContinue)
	}
	// The cursor itself is the store's to check (a bad one: QueryFailed).
	return time.Unix(0, p.S).UTC(), time.Unix(0, p.E).UTC(), mailflow.Cursor(p.C), nil
}

// FiltersDigest identifies the filters of a spec: everything that decides
// which rows match, and nothing that does not (the time range, which the
// token carries; limits, reports, notifications, the TTL). Defaults are
// applied first, so a spec written without them has the same digest as the
// API server's defaulted copy.
func FiltersDigest(spec *v1alpha1.MessageTraceSpec) string {
	f := v1alpha1.MessageTraceSpec{
		SenderAddresses:    spec.SenderAddresses,
		RecipientAddresses: spec.RecipientAddresses,
		DeliveryStatuses:   spec.DeliveryStatuses,
		MessageID:          spec.MessageID,
		MessageTraceID:     spec.MessageTraceID,
		Direction:          spec.Direction,
		OriginalClientIP:   spec.OriginalClientIP,
		FromIP:             spec.FromIP,
		ToIP:               spec.ToIP,
	}
	if f.Direction == "" {
		f.Direction = v1alpha1.Direction(mailflow.DirectionAll)
	}
	if spec.Subject != nil {
		f.Subject = &v1alpha1.SubjectFilter{Value: spec.Subject.Value, Match: spec.Subject.Match}
		if f.Subject.Match == "" {
			f.Subject.Match = v1alpha1.SubjectMatch(mailflow.SubjectContains)
		}
	}
	b, _ := json.Marshal(f)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
