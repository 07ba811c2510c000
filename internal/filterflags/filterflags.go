// Package filterflags is the one set of trace filter flags, shared by
// `mailtrace query` (a store query) and `kubectl mailtrace run` (a
// MessageTrace spec): the same names, the same help text and the same
// parsing (address lists comma-separated or repeated, both;
// case-insensitive statuses and directions; RFC 3339 times or plain dates,
// read in --time-zone; the durations of internal/duration). It imports
// only the API types, the store's vocabulary and cobra, so the kubectl
// plugin stays small, and the IANA time zone database (time/tzdata), so
// --time-zone works on machines without one.
package filterflags

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // --time-zone everywhere, Windows and distroless included

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/duration"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// DefaultSince is the window traced when no time flag is given (PRODUCT.md: the last 2 days).
const DefaultSince = 48 * time.Hour

// Flags are every filter of a MessageTrace spec, as flags.
type Flags struct {
	Senders, Recipients []string
	Start, End, Since   string
	Statuses            []string
	MessageID, TraceID  string
	Direction           string
	OriginalClientIP    string
	FromIP, ToIP        string
	Subject             string
	SubjectMatch        string
	// TimeZone reads plain dates and times without an offset (--time-zone;
	// empty: the local time zone).
	TimeZone string
}

// Register adds the filter flags to cmd.
func (f *Flags) Register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.Senders, "sender", nil, "sender address; * is a wildcard (*@example.com); repeatable or comma-separated")
	fl.StringSliceVar(&f.Recipients, "recipient", nil, "recipient address; * is a wildcard (user@*); repeatable or comma-separated")
	fl.StringVar(&f.Start, "start", "", "start of the range, RFC 3339 (2026-03-01T00:00:00Z), or a date (2026-03-01) or date and time (2026-03-01T09:00) in --time-zone; inclusive")
	fl.StringVar(&f.End, "end", "", "end of the range, as --start; exclusive (default now)")
	fl.StringVar(&f.Since, "since", "", "relative range ending now, such as 48h or 7d (default 48h; at most 90d)")
	fl.StringSliceVar(&f.Statuses, "status", nil, "delivery status: "+StatusList()+"; repeatable or comma-separated")
	fl.StringVar(&f.MessageID, "message-id", "", "Message-ID header, with or without angle brackets")
	fl.StringVar(&f.TraceID, "trace-id", "", "message trace ID (mailtrace's own id of one message)")
	fl.StringVar(&f.Direction, "direction", "", "Inbound, Outbound, Internal or All")
	fl.StringVar(&f.OriginalClientIP, "original-client-ip", "", "IP or CIDR that first handed the message to the organisation")
	fl.StringVar(&f.FromIP, "from-ip", "", "IP or CIDR the message was received from")
	fl.StringVar(&f.ToIP, "to-ip", "", "IP or CIDR the message was sent to")
	fl.StringVar(&f.Subject, "subject", "", "subject text (case-insensitive)")
	fl.StringVar(&f.SubjectMatch, "subject-match", "", "how --subject compares: Contains (default), StartsWith or EndsWith")
	AddTimeZoneFlag(fl, &f.TimeZone)
}

// TimeZoneUsage is the help of --time-zone.
const TimeZoneUsage = "IANA time zone (Asia/Tokyo, Europe/Berlin, UTC) of plain dates such as --start 2026-12-01 and of the times printed in tables (default: the local time zone); JSON, YAML and CSV reports stay in UTC"

// AddTimeZoneFlag adds --time-zone to a command that prints times.
func AddTimeZoneFlag(fl *pflag.FlagSet, p *string) {
	fl.StringVar(p, "time-zone", "", TimeZoneUsage)
}

// LoadLocation reads a --time-zone: an IANA name, UTC, or Local (the
// default when empty).
func LoadLocation(name string) (*time.Location, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "" || strings.EqualFold(name, "local"):
		return time.Local, nil
	case strings.EqualFold(name, "utc") || name == "Z":
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("--time-zone: %q is not an IANA time zone such as Asia/Tokyo, Europe/Berlin or UTC", name)
	}
	return loc, nil
}

// Location is the time zone of --time-zone.
func (f *Flags) Location() (*time.Location, error) { return LoadLocation(f.TimeZone) }

// StatusList is the delivery statuses, comma-separated, for help and errors.
func StatusList() string {
	s := make([]string, len(mailflow.AllStatuses))
	for i, st := range mailflow.AllStatuses {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// parsed is what both conversions share: every flag read and checked.
type parsed struct {
	since      time.Duration // 0: not given
	start, end time.Time     // zero: not given
	statuses   []mailflow.Status
	direction  mailflow.Direction
	subject    mailflow.SubjectMatch
	ips        [3]string // original client, from, to: trimmed, checked
	prefixes   [3]netip.Prefix
}

func (f *Flags) parse() (parsed, error) {
	var p parsed
	loc, err := f.Location()
	if err != nil {
		return p, err
	}
	switch {
	case f.Since != "" && (f.Start != "" || f.End != ""):
		return p, errors.New("--since cannot be combined with --start or --end")
	case f.Since != "":
		d, err := duration.Parse(strings.TrimSpace(f.Since))
		if err != nil {
			return p, fmt.Errorf("--since: %w", err)
		}
		if d <= 0 {
			return p, fmt.Errorf("--since: %s is not a positive duration", f.Since)
		}
		p.since = d
	}
	for _, x := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--start", f.Start, &p.start}, {"--end", f.End, &p.end}} {
		if x.v == "" {
			continue
		}
		t, err := ParseTimeIn(x.v, loc)
		if err != nil {
			return p, fmt.Errorf("%s: %w", x.flag, err)
		}
		*x.dst = t
	}
	for _, s := range f.Statuses {
		st, ok := ParseStatus(s)
		if !ok {
			return p, fmt.Errorf("--status: %q is not a delivery status (use %s)", s, StatusList())
		}
		p.statuses = append(p.statuses, st)
	}
	if f.Direction != "" {
		d, ok := MatchFold(strings.TrimSpace(f.Direction), mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal, mailflow.DirectionAll)
		if !ok {
			return p, fmt.Errorf("--direction: %q is not Inbound, Outbound, Internal or All", f.Direction)
		}
		p.direction = d
	}
	for i, x := range []struct{ flag, v string }{{"--original-client-ip", f.OriginalClientIP}, {"--from-ip", f.FromIP}, {"--to-ip", f.ToIP}} {
		p.ips[i] = strings.TrimSpace(x.v)
		pr, err := mailflow.ParsePrefix(p.ips[i])
		if err != nil {
			return p, fmt.Errorf("%s: %w", x.flag, err)
		}
		p.prefixes[i] = pr
	}
	if f.SubjectMatch != "" {
		if f.Subject == "" {
			return p, errors.New("--subject-match needs --subject")
		}
		m, ok := MatchFold(strings.TrimSpace(f.SubjectMatch), mailflow.SubjectContains, mailflow.SubjectStartsWith, mailflow.SubjectEndsWith)
		if !ok {
			return p, fmt.Errorf("--subject-match: %q is not Contains, StartsWith or EndsWith", f.SubjectMatch)
		}
		p.subject = m
	}
	return p, nil
}

// Query is the store query of the flags, relative to now: without a time
// flag the DefaultSince before now (or before --end).
func (f *Flags) Query(now time.Time) (mailflow.Query, error) {
	var q mailflow.Query
	p, err := f.parse()
	if err != nil {
		return q, err
	}
	now = now.UTC()
	if p.since > 0 {
		q.Start, q.End = now.Add(-p.since), now
	} else {
		q.End = now
		if !p.end.IsZero() {
			q.End = p.end
		}
		q.Start = q.End.Add(-DefaultSince)
		if !p.start.IsZero() {
			q.Start = p.start
		}
	}
	q.Senders = f.Senders
	q.Recipients = f.Recipients
	q.Statuses = p.statuses
	q.MessageID = strings.TrimSpace(f.MessageID)
	q.MessageTraceID = strings.TrimSpace(f.TraceID)
	q.Direction = p.direction
	q.OriginalClientIP, q.FromIP, q.ToIP = p.prefixes[0], p.prefixes[1], p.prefixes[2]
	q.Subject = f.Subject
	q.SubjectMatch = p.subject
	if err := q.Validate(); err != nil {
		return q, err
	}
	return q, nil
}

// Spec is the MessageTrace spec of the flags (its filters only; the manager
// applies the defaults, the API server validates).
func (f *Flags) Spec() (v1alpha1.MessageTraceSpec, error) {
	var s v1alpha1.MessageTraceSpec
	p, err := f.parse()
	if err != nil {
		return s, err
	}
	if f.End != "" && f.Start == "" {
		return s, errors.New("--end needs --start")
	}
	for _, a := range f.Senders {
		s.SenderAddresses = append(s.SenderAddresses, v1alpha1.AddressPattern(a))
	}
	for _, a := range f.Recipients {
		s.RecipientAddresses = append(s.RecipientAddresses, v1alpha1.AddressPattern(a))
	}
	if p.since > 0 {
		s.Window = &metav1.Duration{Duration: p.since}
	}
	if !p.start.IsZero() {
		t := metav1.NewTime(p.start)
		s.StartTime = &t
	}
	if !p.end.IsZero() {
		t := metav1.NewTime(p.end)
		s.EndTime = &t
	}
	for _, st := range p.statuses {
		s.DeliveryStatuses = append(s.DeliveryStatuses, v1alpha1.DeliveryStatus(st))
	}
	s.MessageID, s.MessageTraceID = strings.TrimSpace(f.MessageID), strings.TrimSpace(f.TraceID)
	s.Direction = v1alpha1.Direction(p.direction)
	s.OriginalClientIP = v1alpha1.IPOrCIDR(p.ips[0])
	s.FromIP, s.ToIP = v1alpha1.IPOrCIDR(p.ips[1]), v1alpha1.IPOrCIDR(p.ips[2])
	if f.Subject != "" {
		s.Subject = &v1alpha1.SubjectFilter{Value: f.Subject, Match: v1alpha1.SubjectMatch(p.subject)}
	}
	return s, nil
}

// ParseStatus reads a delivery status, case-insensitively.
func ParseStatus(s string) (mailflow.Status, bool) {
	return MatchFold(strings.TrimSpace(s), mailflow.AllStatuses...)
}

// MatchFold returns the option s names, case-insensitively.
func MatchFold[T ~string](s string, options ...T) (T, bool) {
	for _, o := range options {
		if strings.EqualFold(s, string(o)) {
			return o, true
		}
	}
	return "", false
}

// ParseTime accepts RFC 3339 (with or without fractional seconds) or a date, read as UTC midnight.
func ParseTime(s string) (time.Time, error) { return ParseTimeIn(s, time.UTC) }

// localLayouts are the times without an offset ParseTimeIn reads in its
// time zone: a date (its midnight), a date and time.
var localLayouts = []string{"2006-01-02", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"}

// ParseTimeIn accepts RFC 3339 (its own offset decides), or a date or a
// date and time without an offset, read in loc (a date is its midnight
// there). The result is in UTC.
func ParseTimeIn(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2026-03-01T09:00:00Z), a date (2026-03-01) or a date and time (2026-03-01T09:00) in --time-zone", s)
}

// FlagNames are the filter flags Register adds (--time-zone aside), for a
// command that must refuse them (kubectl mailtrace run --continue-from
// takes the earlier trace's filters).
var FlagNames = []string{"sender", "recipient", "start", "end", "since", "status", "message-id", "trace-id", "direction",
	"original-client-ip", "from-ip", "to-ip", "subject", "subject-match"}

// EventTypes are the event types --event accepts (mailflow's).
var EventTypes = []mailflow.EventType{
	mailflow.EventReceive, mailflow.EventSubmit, mailflow.EventResolve, mailflow.EventRedirect, mailflow.EventTransfer,
	mailflow.EventSend, mailflow.EventNotify, mailflow.EventScan, mailflow.EventSieve, mailflow.EventDeliver, mailflow.EventSave,
	mailflow.EventDefer, mailflow.EventFail, mailflow.EventExpand, mailflow.EventQuarantine, mailflow.EventFilterAsSpam,
}

// EventUsage is the help of --event.
func EventUsage() string {
	s := make([]string, len(EventTypes))
	for i, e := range EventTypes {
		s[i] = string(e)
	}
	return "only events of these types (like Get-MessageTraceDetailV2's -Event): " + strings.Join(s, ", ") + "; repeatable or comma-separated"
}

// ParseEventTypes reads --event values, case-insensitively.
func ParseEventTypes(in []string) ([]mailflow.EventType, error) {
	var out []mailflow.EventType
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		e, ok := MatchFold(s, EventTypes...)
		if !ok {
			return nil, fmt.Errorf("--event: %q is not an event type (%s)", s, strings.TrimPrefix(EventUsage(), "only events of these types (like Get-MessageTraceDetailV2's -Event): "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}
