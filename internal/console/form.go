package console

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/duration"
	"github.com/mailtrace/mailtrace/internal/filterflags"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Presets are the time range choices of the new-trace form, in days, as
// the source product's slider has them.
var Presets = []int{1, 2, 7, 10, 30, 90}

// statusThresholdDays is the range beyond which the manager answers with a
// report rather than rows (its default status threshold): the form says so.
const statusThresholdDays = 10

// localLayout is the value of an <input type=datetime-local>.
const localLayout = "2006-01-02T15:04"

// TraceForm is the new-trace form as the browser sends it: every filter of
// the MessageTrace spec, the time range as a preset or a custom start and
// end in a time zone, and the report.
type TraceForm struct {
	Senders, Recipients string // comma- or newline-separated address patterns
	Range               string // a preset in days ("2") or "custom"
	Start, End          string // datetime-local values, read in TimeZone
	TimeZone            string // IANA name
	Statuses            []string
	MessageID, TraceID  string
	Direction           string
	OriginalClientIP    string
	FromIP, ToIP        string
	Subject             string
	SubjectMatch        string
	Report              bool   // make a report whatever the range (the seed's "summary report")
	ReportType          string // Summary or Detailed
	Gzip                bool
	ReportStore         string // a ReportStore of the namespace; empty: the operator's default
	Limit               string
}

// FieldError is a problem with one field of the form.
type FieldError struct {
	Field string // the input's name
	Msg   string
}

// DefaultForm is the form of "Start a trace": everyone, the last 2 days.
func DefaultForm(tz string) TraceForm {
	return TraceForm{Range: "2", TimeZone: tz, ReportType: string(v1alpha1.ReportSummary), SubjectMatch: string(v1alpha1.SubjectMatch("Contains"))}
}

// ParseForm reads a posted new-trace form.
func ParseForm(v url.Values) TraceForm {
	f := TraceForm{
		Senders: v.Get("senders"), Recipients: v.Get("recipients"),
		Range: v.Get("range"), Start: v.Get("start"), End: v.Get("end"), TimeZone: v.Get("tz"),
		Statuses: v["status"], MessageID: v.Get("messageId"), TraceID: v.Get("traceId"),
		Direction: v.Get("direction"), OriginalClientIP: v.Get("originalClientIP"),
		FromIP: v.Get("fromIP"), ToIP: v.Get("toIP"), Subject: v.Get("subject"), SubjectMatch: v.Get("subjectMatch"),
		Report: v.Get("report") != "", ReportType: v.Get("reportType"), Gzip: v.Get("gzip") != "", Limit: v.Get("limit"), ReportStore: strings.TrimSpace(v.Get("reportStore")),
	}
	if f.Range == "" {
		f.Range = "2"
	}
	return f
}

// splitList splits a list typed by a person: commas, semicolons, white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// Spec turns the form into a MessageTrace spec. now and the form's time
// zone read a custom range; every problem is reported against its field,
// so the form comes back with the person's input and the messages.
func (f TraceForm) Spec(now time.Time) (v1alpha1.MessageTraceSpec, []FieldError) {
	var errs []FieldError
	ff := filterflags.Flags{
		Senders: splitList(f.Senders), Recipients: splitList(f.Recipients),
		MessageID: f.MessageID, TraceID: f.TraceID, Subject: strings.TrimSpace(f.Subject),
	}
	for _, s := range f.Statuses {
		if _, ok := filterflags.ParseStatus(s); !ok {
			errs = append(errs, FieldError{"status", fmt.Sprintf("%q is not a delivery status", s)})
			continue
		}
		ff.Statuses = append(ff.Statuses, s)
	}
	if d := strings.TrimSpace(f.Direction); d != "" && !strings.EqualFold(d, "All") {
		ff.Direction = d
	}
	if ff.Subject != "" {
		ff.SubjectMatch = f.SubjectMatch
	}
	for _, a := range append(slices.Clone(ff.Senders), ff.Recipients...) {
		if a != "*" && (strings.Count(a, "@") != 1 || strings.HasPrefix(a, "@") || strings.HasSuffix(a, "@")) {
			field := "senders"
			if slices.Contains(ff.Recipients, a) {
				field = "recipients"
			}
			errs = append(errs, FieldError{field, fmt.Sprintf("%q is not an address such as user@example.com or *@example.com", a)})
		}
	}
	for _, ip := range []struct{ field, v string }{{"originalClientIP", f.OriginalClientIP}, {"fromIP", f.FromIP}, {"toIP", f.ToIP}} {
		if _, err := mailflow.ParsePrefix(strings.TrimSpace(ip.v)); err != nil {
			errs = append(errs, FieldError{ip.field, err.Error()})
		}
	}
	ff.OriginalClientIP, ff.FromIP, ff.ToIP = f.OriginalClientIP, f.FromIP, f.ToIP

	var start, end *metav1.Time
	var window *metav1.Duration
	if f.Range == "custom" {
		loc, err := time.LoadLocation(f.TimeZone)
		if err != nil || f.TimeZone == "" {
			errs = append(errs, FieldError{"tz", fmt.Sprintf("%q is not a time zone such as Asia/Tokyo or UTC", f.TimeZone)})
			loc = time.UTC
		}
		s, serr := time.ParseInLocation(localLayout, strings.TrimSpace(f.Start), loc)
		if serr != nil {
			errs = append(errs, FieldError{"start", "a start date and time is needed for a custom range"})
		}
		e := now
		if strings.TrimSpace(f.End) != "" {
			var eerr error
			if e, eerr = time.ParseInLocation(localLayout, strings.TrimSpace(f.End), loc); eerr != nil {
				errs = append(errs, FieldError{"end", "the end is not a date and time"})
			}
		}
		if serr == nil && !e.After(s) {
			errs = append(errs, FieldError{"end", "the end must be after the start"})
		} else if serr == nil && e.Sub(s) > 90*duration.Day {
			errs = append(errs, FieldError{"end", "the range can be at most 90 days"})
		}
		st, et := metav1.NewTime(s.UTC()), metav1.NewTime(e.UTC())
		start, end = &st, &et
	} else {
		days, err := strconv.Atoi(f.Range)
		if err != nil || !slices.Contains(Presets, days) {
			errs = append(errs, FieldError{"range", fmt.Sprintf("%q is not one of the ranges offered", f.Range)})
			days = 2
		}
		window = &metav1.Duration{Duration: time.Duration(days) * duration.Day}
	}
	spec, err := ff.Spec()
	if err != nil && len(errs) == 0 {
		errs = append(errs, FieldError{"", err.Error()})
	}
	spec.Window, spec.StartTime, spec.EndTime = window, start, end
	if l := strings.TrimSpace(f.Limit); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			errs = append(errs, FieldError{"limit", "the most rows shown is a number from 1 to 1000"})
		} else {
			spec.ResultLimit = int32(n)
		}
	}
	typ := v1alpha1.ReportSummary
	if strings.EqualFold(f.ReportType, string(v1alpha1.ReportDetailed)) {
		typ = v1alpha1.ReportDetailed
	}
	if f.Report || f.Gzip || typ != v1alpha1.ReportSummary || f.ReportStore != "" {
		spec.Report = &v1alpha1.ReportSpec{Always: f.Report, Type: typ, Gzip: f.Gzip, StoreName: f.ReportStore}
	}
	return spec, errs
}

// FormOf is the form that reproduces a trace's spec (a query used as the
// starting point of another, as the source product allows), its times
// shown in loc.
func FormOf(s *v1alpha1.MessageTraceSpec, tz string, loc *time.Location) TraceForm {
	f := DefaultForm(tz)
	join := func(a []v1alpha1.AddressPattern) string {
		out := make([]string, len(a))
		for i, x := range a {
			out[i] = string(x)
		}
		return strings.Join(out, ", ")
	}
	f.Senders, f.Recipients = join(s.SenderAddresses), join(s.RecipientAddresses)
	switch {
	case s.StartTime != nil:
		f.Range = "custom"
		f.Start = s.StartTime.In(loc).Format(localLayout)
		if s.EndTime != nil {
			f.End = s.EndTime.In(loc).Format(localLayout)
		}
	case s.Window != nil:
		f.Range = "custom"
		for _, d := range Presets {
			if s.Window.Duration == time.Duration(d)*duration.Day {
				f.Range = strconv.Itoa(d)
			}
		}
		if f.Range == "custom" { // a window no preset has: the same length, ending now
			now := time.Now().In(loc)
			f.Start, f.End = now.Add(-s.Window.Duration).Format(localLayout), now.Format(localLayout)
		}
	}
	for _, st := range s.DeliveryStatuses {
		f.Statuses = append(f.Statuses, string(st))
	}
	f.MessageID, f.TraceID, f.Direction = s.MessageID, s.MessageTraceID, string(s.Direction)
	f.OriginalClientIP, f.FromIP, f.ToIP = string(s.OriginalClientIP), string(s.FromIP), string(s.ToIP)
	if s.Subject != nil {
		f.Subject, f.SubjectMatch = s.Subject.Value, string(s.Subject.Match)
	}
	if s.Report != nil {
		f.Report, f.Gzip, f.ReportStore = s.Report.Always, s.Report.Gzip, s.Report.StoreName
		if s.Report.Type != "" {
			f.ReportType = string(s.Report.Type)
		}
	}
	if s.ResultLimit > 0 {
		f.Limit = strconv.Itoa(int(s.ResultLimit))
	}
	return f
}

// HasStatus says whether the form selects status s (for the checkboxes).
func (f TraceForm) HasStatus(s string) bool { return slices.Contains(f.Statuses, s) }

// DefaultQuery is one of the five default queries of the source product.
type DefaultQuery struct {
	ID   string // stable: the URL and the message catalog's key
	Spec v1alpha1.MessageTraceSpec
}

// DefaultQueries are the five default queries of the seeds, for the
// operator's accepted domains: sent from and received by the primary
// domains in the last day, pending delivery to the organisation's users in
// the last 2 days, quarantined and failed in the last 7 days. Without
// domains, "sent" and "received" use the direction the ingester derived
// from its own --accepted-domain flags.
func DefaultQueries(domains []string) []DefaultQuery {
	var pats []v1alpha1.AddressPattern
	for _, d := range domains {
		if d = strings.TrimSpace(strings.TrimPrefix(d, "@")); d != "" {
			pats = append(pats, v1alpha1.AddressPattern("*@"+d))
		}
	}
	day := func(n int) *metav1.Duration { return &metav1.Duration{Duration: time.Duration(n) * duration.Day} }
	sent := v1alpha1.MessageTraceSpec{SenderAddresses: pats, Window: day(1)}
	received := v1alpha1.MessageTraceSpec{RecipientAddresses: pats, Window: day(1)}
	pending := v1alpha1.MessageTraceSpec{RecipientAddresses: pats, DeliveryStatuses: []v1alpha1.DeliveryStatus{"Pending"}, Window: day(2)}
	if len(pats) == 0 {
		sent.Direction, received.Direction, pending.Direction = "Outbound", "Inbound", "Inbound"
	}
	return []DefaultQuery{
		{"sent", sent},
		{"received", received},
		{"pending", pending},
		{"quarantined", v1alpha1.MessageTraceSpec{DeliveryStatuses: []v1alpha1.DeliveryStatus{"Quarantined"}, Window: day(7)}},
		{"failed", v1alpha1.MessageTraceSpec{DeliveryStatuses: []v1alpha1.DeliveryStatus{"Failed"}, Window: day(7)}},
	}
}

// Page is one page of a results table.
type Page struct {
	Rows             []v1alpha1.TraceRow
	First, Last      int // 1-based positions of the rows shown; 0 when none
	Of               int // rows after the status filter
	Number, Pages    int
	PrevPage, NextPg int // 0: none
}

// PerPageChoices are the page sizes offered; 1,000 is a whole status.
var PerPageChoices = []int{50, 100, 250, 1000}

// Paginate filters rows by status (empty: all) and cuts page number (1-based) of per rows.
func Paginate(rows []v1alpha1.TraceRow, status string, number, per int) Page {
	if !slices.Contains(PerPageChoices, per) {
		per = 100
	}
	var kept []v1alpha1.TraceRow
	if status == "" {
		kept = rows
	} else {
		for _, r := range rows {
			if strings.EqualFold(string(r.Status), status) {
				kept = append(kept, r)
			}
		}
	}
	p := Page{Of: len(kept), Pages: max(1, (len(kept)+per-1)/per)}
	p.Number = min(max(number, 1), p.Pages)
	lo := (p.Number - 1) * per
	hi := min(lo+per, len(kept))
	if lo < hi {
		p.Rows, p.First, p.Last = kept[lo:hi], lo+1, hi
	}
	if p.Number > 1 {
		p.PrevPage = p.Number - 1
	}
	if p.Number < p.Pages {
		p.NextPg = p.Number + 1
	}
	return p
}

// StatusCount is one delivery status and its count, for the filter chips.
type StatusCount struct {
	Status string
	N      int64
}

// Counts lists the statuses with a count, in the product's order.
func Counts(c *v1alpha1.StatusCounts) []StatusCount {
	if c == nil {
		return nil
	}
	all := []StatusCount{{"Delivered", c.Delivered}, {"Pending", c.Pending}, {"Expanded", c.Expanded}, {"Failed", c.Failed},
		{"Quarantined", c.Quarantined}, {"FilteredAsSpam", c.FilteredAsSpam}, {"GettingStatus", c.GettingStatus}}
	var out []StatusCount
	for _, s := range all {
		if s.N > 0 {
			out = append(out, s)
		}
	}
	return out
}

// RangeDays is a spec's range in days, for the "reports over 10 days" notice.
func RangeDays(s *v1alpha1.MessageTraceSpec, now time.Time) float64 {
	start, end := s.ResolveTimeRange(now)
	return end.Sub(start).Hours() / 24
}
