package mailflow

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Row is one (message, recipient) result of a trace.
type Row struct {
	Received         time.Time `json:"received"`
	Sender           string    `json:"sender"`
	Recipient        string    `json:"recipient"`
	Subject          string    `json:"subject"`
	Status           Status    `json:"status"`
	MessageID        string    `json:"messageId"`
	MessageTraceID   string    `json:"messageTraceId"`
	Size             int64     `json:"size"`
	OriginalClientIP string    `json:"originalClientIp"`
	FromIP           string    `json:"fromIp"`
	ToIP             string    `json:"toIp"`
	Direction        Direction `json:"direction"`
	ExpandedFrom     string    `json:"expandedFrom,omitempty"`
	// StatusTime is when the current status was decided (zero for GettingStatus).
	StatusTime time.Time `json:"statusTime,omitzero"`
	// Folder is the mailbox folder the recipient's copy was stored into:
	// that of its latest Save event (FolderOf); empty when none is known.
	Folder string `json:"folder,omitempty"`
}

// SubjectMatch selects how Query.Subject is compared.
type SubjectMatch string

// Subject comparisons (case-insensitive).
const (
	SubjectContains   SubjectMatch = "Contains"
	SubjectStartsWith SubjectMatch = "StartsWith"
	SubjectEndsWith   SubjectMatch = "EndsWith"
)

// Query is a trace: every filter is optional; filters combine with AND and
// the values inside one list with OR.
type Query struct {
	// Start (inclusive) and End (exclusive) bound the received time. Required.
	Start, End time.Time
	// Senders and Recipients are address patterns; `*` matches any run of
	// characters; matching is case-insensitive.
	Senders    []string
	Recipients []string
	Statuses   []Status
	// MessageID matches the Message-ID header, with or without angle brackets.
	MessageID      string
	MessageTraceID string
	// Direction; empty or All means any.
	Direction Direction
	// OriginalClientIP, FromIP and ToIP are IP prefixes (a lone address is a /32 or /128).
	OriginalClientIP netip.Prefix
	FromIP           netip.Prefix
	ToIP             netip.Prefix
	// Subject is compared as SubjectMatch says (Contains when empty).
	Subject      string
	SubjectMatch SubjectMatch
	// Scope restricts what the query may see, whatever its filters: a row
	// is visible when its sender OR its recipient matches one of these
	// address patterns. nil is unrestricted; an empty non-nil Scope sees
	// nothing. It is how a tenant's grants (TracePolicy) reach the store,
	// which enforces them in the query itself.
	Scope []string
}

// Unscoped reports whether the query may see every row.
func (q *Query) Unscoped() bool { return q.Scope == nil }

// Cursor marks a position in a trace's result; the zero value is the start.
// It is opaque to callers and can be stored as a string.
type Cursor string

// Page is one page of a trace.
type Page struct {
	Rows []Row
	// Next is the cursor of the following page, empty when this page is the last.
	Next Cursor
}

// Counts is the number of matching rows per status, and their total.
type Counts struct {
	ByStatus map[Status]int64
	Total    int64
}

// ErrInvalidQuery wraps a query the store refuses.
var ErrInvalidQuery = errors.New("invalid query")

// MaxAddresses is the most sender or recipient patterns one query may hold.
const MaxAddresses = 100

// MaxScope is the most scope (grant) patterns one query may hold.
const MaxScope = 1000

// MaxRange is the longest time range one query may cover.
const MaxRange = 90 * 24 * time.Hour

// Validate checks a query the way every adapter must before running it.
func (q *Query) Validate() error {
	if q.Start.IsZero() || q.End.IsZero() {
		return fmt.Errorf("%w: start and end are required", ErrInvalidQuery)
	}
	if !q.End.After(q.Start) {
		return fmt.Errorf("%w: end %s is not after start %s", ErrInvalidQuery, q.End.UTC().Format(time.RFC3339), q.Start.UTC().Format(time.RFC3339))
	}
	if q.End.Sub(q.Start) > MaxRange {
		return fmt.Errorf("%w: the range %s is longer than 90 days", ErrInvalidQuery, q.End.Sub(q.Start))
	}
	if len(q.Senders) > MaxAddresses || len(q.Recipients) > MaxAddresses {
		return fmt.Errorf("%w: at most %d sender and %d recipient patterns", ErrInvalidQuery, MaxAddresses, MaxAddresses)
	}
	if len(q.Scope) > MaxScope {
		return fmt.Errorf("%w: at most %d scope patterns", ErrInvalidQuery, MaxScope)
	}
	for _, p := range append(append(append([]string{}, q.Senders...), q.Recipients...), q.Scope...) {
		if err := ValidatePattern(p); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidQuery, err)
		}
	}
	for _, s := range q.Statuses {
		if _, ok := statusSet[s]; !ok {
			return fmt.Errorf("%w: unknown delivery status %q", ErrInvalidQuery, s)
		}
	}
	switch q.Direction {
	case "", DirectionAll, DirectionInbound, DirectionOutbound, DirectionInternal:
	default:
		return fmt.Errorf("%w: unknown direction %q", ErrInvalidQuery, q.Direction)
	}
	switch q.SubjectMatch {
	case "", SubjectContains, SubjectStartsWith, SubjectEndsWith:
	default:
		return fmt.Errorf("%w: unknown subject match %q", ErrInvalidQuery, q.SubjectMatch)
	}
	return nil
}

var statusSet = func() map[Status]struct{} {
	m := map[Status]struct{}{}
	for _, s := range AllStatuses {
		m[s] = struct{}{}
	}
	return m
}()

// NormalizeMessageID strips white space and angle brackets from a Message-ID
// so `<abc@x>` and `abc@x` find the same message.
func NormalizeMessageID(id string) string {
	id = strings.TrimSpace(id)
	id = strings.TrimPrefix(id, "<")
	return strings.TrimSuffix(id, ">")
}

// SubjectLike returns the LIKE pattern for the query's subject filter, or ""
// when there is none.
func (q *Query) SubjectLike() string {
	if q.Subject == "" {
		return ""
	}
	lit := LikeLiteral(q.Subject)
	switch q.SubjectMatch {
	case SubjectStartsWith:
		return lit + "%"
	case SubjectEndsWith:
		return "%" + lit
	default:
		return "%" + lit + "%"
	}
}

// Match reports whether a row satisfies every filter of q. It is the
// reference semantics that SQL adapters implement (and the conformance suite
// checks them against).
func (q *Query) Match(r Row) bool {
	if r.Received.Before(q.Start) || !r.Received.Before(q.End) {
		return false
	}
	if !q.Visible(r) {
		return false
	}
	if len(q.Senders) > 0 && !matchAny(q.Senders, r.Sender) {
		return false
	}
	if len(q.Recipients) > 0 && !matchAny(q.Recipients, r.Recipient) {
		return false
	}
	if len(q.Statuses) > 0 {
		ok := false
		for _, s := range q.Statuses {
			ok = ok || s == r.Status
		}
		if !ok {
			return false
		}
	}
	if q.MessageID != "" && !strings.EqualFold(NormalizeMessageID(q.MessageID), NormalizeMessageID(r.MessageID)) {
		return false
	}
	if q.MessageTraceID != "" && q.MessageTraceID != r.MessageTraceID {
		return false
	}
	if q.Direction != "" && q.Direction != DirectionAll && q.Direction != r.Direction {
		return false
	}
	for _, f := range []struct {
		p  netip.Prefix
		ip string
	}{{q.OriginalClientIP, r.OriginalClientIP}, {q.FromIP, r.FromIP}, {q.ToIP, r.ToIP}} {
		if !f.p.IsValid() {
			continue
		}
		a, err := netip.ParseAddr(f.ip)
		if err != nil || !f.p.Contains(a.Unmap()) {
			return false
		}
	}
	if q.Subject != "" {
		s, sub := strings.ToLower(r.Subject), strings.ToLower(q.Subject)
		switch q.SubjectMatch {
		case SubjectStartsWith:
			return strings.HasPrefix(s, sub)
		case SubjectEndsWith:
			return strings.HasSuffix(s, sub)
		default:
			return strings.Contains(s, sub)
		}
	}
	return true
}

// Visible reports whether a row is inside the query's Scope: its sender or
// its recipient matches one of the scope's patterns (always, for a nil scope).
func (q *Query) Visible(r Row) bool {
	return InScope(q.Scope, r.Sender, r.Recipient)
}

// ParsePrefix accepts an IP address or a CIDR and returns a prefix (a lone
// address becomes a /32 or /128). IPv4-mapped IPv6 addresses are unmapped.
func ParsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trace order: newest received first; the rows of one message by message
// trace ID, and inside a message group-first, as Exchange lists them: a
// distribution group's row (Expanded) and right after it the rows of its
// members, the groups and lone recipients by address. RowGroup is the
// address a row is listed under (its ExpandedFrom, else its Recipient) and
// RowMember whether it is listed after that address's own row; then the
// recipient breaks ties. Both adapters order by these keys (SQL:
// COALESCE(NULLIF(expanded_from, ''), recipient), expanded_from <> '',
// recipient) and CompareRows is the reference.

// RowGroup is the address a row is listed under: the group it was expanded
// from, else its own recipient.
func RowGroup(r Row) string {
	if r.ExpandedFrom != "" {
		return r.ExpandedFrom
	}
	return r.Recipient
}

// RowMember reports whether a row is listed after its group's own row.
func RowMember(r Row) bool { return r.ExpandedFrom != "" }

// CompareRows compares two rows in trace order (-1: a comes first).
func CompareRows(a, b Row) int {
	if c := b.Received.Compare(a.Received); c != 0 {
		return c
	}
	if c := strings.Compare(a.MessageTraceID, b.MessageTraceID); c != 0 {
		return c
	}
	if c := strings.Compare(RowGroup(a), RowGroup(b)); c != 0 {
		return c
	}
	if am, bm := RowMember(a), RowMember(b); am != bm {
		if bm {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Recipient, b.Recipient)
}

// cursorPos is what a Cursor encodes: the sort key of the last row returned.
type cursorPos struct {
	R int64  `json:"r"`           // received, unix nanoseconds
	M string `json:"m"`           // message trace id
	C string `json:"c"`           // recipient
	E string `json:"e,omitempty"` // expanded from (a cursor without it: a recipient of no group)
}

// CursorPos is the position a cursor marks: the keys of the row it follows.
type CursorPos struct {
	Received       time.Time
	MessageTraceID string
	Recipient      string
	ExpandedFrom   string
}

// Group and Member are RowGroup and RowMember of the position's row.
func (p CursorPos) Group() string {
	return RowGroup(Row{Recipient: p.Recipient, ExpandedFrom: p.ExpandedFrom})
}

// Member is RowMember of the position's row.
func (p CursorPos) Member() bool { return p.ExpandedFrom != "" }

// NewCursor makes the cursor that continues after row r.
func NewCursor(r Row) Cursor {
	b, _ := json.Marshal(cursorPos{R: r.Received.UnixNano(), M: r.MessageTraceID, C: r.Recipient, E: r.ExpandedFrom})
	return Cursor(base64.RawURLEncoding.EncodeToString(b))
}

// DecodeCursor returns the position a cursor marks; ok is false for the zero cursor.
func DecodeCursor(c Cursor) (pos CursorPos, ok bool, err error) {
	if c == "" {
		return CursorPos{}, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil {
		return CursorPos{}, false, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	var p cursorPos
	if err := json.Unmarshal(b, &p); err != nil {
		return CursorPos{}, false, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	return CursorPos{Received: time.Unix(0, p.R).UTC(), MessageTraceID: p.M, Recipient: p.C, ExpandedFrom: p.E}, true, nil
}
