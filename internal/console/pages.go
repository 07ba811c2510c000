package console

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// NewScheme is the scheme of the console's clients: Kubernetes' kinds and mailtrace's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// recentLimit is how many of the user's recent queries home lists (the source product's ten).
const recentLimit = 10

// TraceView is a MessageTrace as the lists show it.
type TraceView struct {
	MT      *v1alpha1.MessageTrace
	Summary string
}

// Summary says what a spec selects, briefly: its filters and range.
func Summary(s *v1alpha1.MessageTraceSpec) string {
	var parts []string
	addrs := func(label string, a []v1alpha1.AddressPattern) {
		if len(a) > 0 {
			out := make([]string, len(a))
			for i, x := range a {
				out[i] = string(x)
			}
			parts = append(parts, label+" "+strings.Join(out, ", "))
		}
	}
	addrs("from", s.SenderAddresses)
	addrs("to", s.RecipientAddresses)
	if len(s.DeliveryStatuses) > 0 {
		st := make([]string, len(s.DeliveryStatuses))
		for i, x := range s.DeliveryStatuses {
			st[i] = string(x)
		}
		parts = append(parts, strings.Join(st, "|"))
	}
	if s.Direction != "" && s.Direction != "All" {
		parts = append(parts, string(s.Direction))
	}
	for _, kv := range [][2]string{{"message-id", s.MessageID}, {"trace-id", s.MessageTraceID}, {"client", string(s.OriginalClientIP)},
		{"from-ip", string(s.FromIP)}, {"to-ip", string(s.ToIP)}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if s.Subject != nil {
		parts = append(parts, fmt.Sprintf("subject %q", s.Subject.Value))
	}
	switch {
	case s.Window != nil:
		parts = append(parts, "last "+humanWindow(s.Window.Duration))
	case s.StartTime != nil:
		parts = append(parts, "from "+s.StartTime.UTC().Format("2006-01-02 15:04Z"))
	default:
		parts = append(parts, "last 2d")
	}
	return strings.Join(parts, " · ")
}

func humanWindow(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

// IsQuery says whether a trace is a query a person ran (not a details
// timeline, not a schedule's run).
func IsQuery(mt *v1alpha1.MessageTrace) bool {
	return mt.Spec.Details == nil && mt.Labels[v1alpha1.LabelSchedule] == ""
}

// Autosaved keeps the user's own autosaved queries (the API server checked
// their creator); with no user name known, every query of the namespace.
func Autosaved(items []v1alpha1.MessageTrace, user string) []v1alpha1.MessageTrace {
	if user == "" {
		return items
	}
	var out []v1alpha1.MessageTrace
	for _, mt := range items {
		if mt.IsAutosavedBy(user) {
			out = append(out, mt)
		}
	}
	return out
}

// Recent is the newest queries first, at most n.
func Recent(items []v1alpha1.MessageTrace, n int) []*v1alpha1.MessageTrace {
	var out []*v1alpha1.MessageTrace
	for i := range items {
		if IsQuery(&items[i]) {
			out = append(out, &items[i])
		}
	}
	slices.SortStableFunc(out, func(a, b *v1alpha1.MessageTrace) int {
		return cmp.Or(b.CreationTimestamp.Compare(a.CreationTimestamp.Time), strings.Compare(a.Name, b.Name))
	})
	return out[:min(n, len(out))]
}

type homeData struct {
	User     string // the user's name, as the API server knows it ("": unknown)
	Defaults []DefaultQuery
	Custom   []v1alpha1.MessageTraceSchedule
	Recent   []TraceView
	Reports  []TraceView
	Errors   []string
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, rq *request) {
	d := homeData{Defaults: DefaultQueries(s.opts.Domains), User: s.userName(r.Context(), rq)}
	var traces v1alpha1.MessageTraceList
	if err := rq.c.List(r.Context(), &traces, client.InNamespace(rq.ns)); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			s.kubeFail(w, r, rq, err)
			return
		}
		d.Errors = append(d.Errors, err.Error())
	}
	for _, mt := range Recent(Autosaved(traces.Items, d.User), recentLimit) {
		d.Recent = append(d.Recent, TraceView{MT: mt, Summary: Summary(&mt.Spec)})
	}
	for _, mt := range Recent(traces.Items, len(traces.Items)) {
		if mt.Status.Report != nil {
			d.Reports = append(d.Reports, TraceView{MT: mt, Summary: Summary(&mt.Spec)})
		}
	}
	var scheds v1alpha1.MessageTraceScheduleList
	if err := rq.c.List(r.Context(), &scheds, client.InNamespace(rq.ns)); err != nil {
		d.Errors = append(d.Errors, err.Error())
	}
	d.Custom = scheds.Items
	slices.SortFunc(d.Custom, func(a, b v1alpha1.MessageTraceSchedule) int { return strings.Compare(a.Name, b.Name) })
	p := s.newPage(rq, "", "home", d)
	p.Title = p.T("home.title")
	s.render(w, http.StatusOK, "home", p)
}

type newData struct {
	Form      TraceForm
	Errors    map[string]string
	General   string
	Presets   []int
	Statuses  []string
	TimeZones []string
	Stores    []string // the namespace's ReportStores
	Threshold int
}

// timeZones offered by the form (the user's own is added when missing).
var timeZones = []string{"UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Moscow", "Africa/Johannesburg",
	"Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
	"America/Sao_Paulo", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Pacific/Honolulu"}

var allStatuses = []string{"Delivered", "Pending", "Expanded", "Failed", "Quarantined", "FilteredAsSpam", "GettingStatus"}

func (s *Server) formPage(w http.ResponseWriter, r *http.Request, rq *request, code int, f TraceForm, errs []FieldError) {
	d := newData{Form: f, Errors: map[string]string{}, Presets: Presets, Statuses: allStatuses, Threshold: statusThresholdDays}
	var stores v1alpha1.ReportStoreList
	if err := rq.c.List(r.Context(), &stores, client.InNamespace(rq.ns)); err == nil { // a user who may not list them gets the default
		for _, st := range stores.Items {
			d.Stores = append(d.Stores, st.Name)
		}
		slices.Sort(d.Stores)
	}
	for _, e := range errs {
		if e.Field == "" {
			d.General = e.Msg
			continue
		}
		d.Errors[e.Field] = strings.TrimSpace(d.Errors[e.Field] + " " + e.Msg)
	}
	if d.Form.ReportStore == "\x00" {
		d.Form.ReportStore = ""
		if len(d.Stores) > 0 {
			d.Form.ReportStore = d.Stores[0]
		}
	}
	d.TimeZones = timeZones
	if f.TimeZone != "" && !slices.Contains(timeZones, f.TimeZone) {
		d.TimeZones = append([]string{f.TimeZone}, timeZones...)
	}
	p := s.newPage(rq, "", "new", d)
	p.Title = p.T("new.title")
	s.render(w, code, "new", p)
}

func (s *Server) newTrace(w http.ResponseWriter, r *http.Request, rq *request) {
	f := DefaultForm(rq.tz)
	f.ReportStore = "\x00" // a fresh form: the namespace's first ReportStore (below)
	if from := r.URL.Query().Get("from"); from != "" {
		mt := &v1alpha1.MessageTrace{}
		if err := rq.c.Get(r.Context(), client.ObjectKey{Namespace: rq.ns, Name: from}, mt); err != nil {
			s.kubeFail(w, r, rq, err)
			return
		}
		f = FormOf(&mt.Spec, rq.tz, rq.loc)
	}
	s.formPage(w, r, rq, http.StatusOK, f, nil)
}

func (s *Server) rememberTZ(w http.ResponseWriter, tz string) {
	if _, err := time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: tzCookie, Value: url.QueryEscape(tz), Path: "/", SameSite: http.SameSiteStrictMode, MaxAge: 400 * 24 * 3600})
}

func (s *Server) createTrace(w http.ResponseWriter, r *http.Request, rq *request) {
	f := ParseForm(r.PostForm)
	s.rememberTZ(w, f.TimeZone)
	spec, errs := f.Spec(time.Now())
	if len(errs) > 0 {
		s.formPage(w, r, rq, http.StatusUnprocessableEntity, f, errs)
		return
	}
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: rq.ns, GenerateName: "trace-"}, Spec: spec}
	if user := s.userName(r.Context(), rq); user != "" {
		mt.MarkAutosaved(user) // one of the user's last 10 queries
	}
	if err := rq.c.Create(r.Context(), mt); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			s.formPage(w, r, rq, http.StatusUnprocessableEntity, f, []FieldError{{Msg: err.Error()}})
			return
		}
		s.kubeFail(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/ns/"+url.PathEscape(rq.ns)+"/traces/"+url.PathEscape(mt.Name), http.StatusSeeOther)
}

func (s *Server) runDefault(w http.ResponseWriter, r *http.Request, rq *request) {
	id := r.PathValue("id")
	i := slices.IndexFunc(DefaultQueries(s.opts.Domains), func(q DefaultQuery) bool { return q.ID == id })
	if i < 0 {
		s.fail(w, r, rq, http.StatusNotFound, "error.notfound", fmt.Errorf("no default query %q", id))
		return
	}
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: rq.ns, GenerateName: id + "-"}, Spec: DefaultQueries(s.opts.Domains)[i].Spec}
	if user := s.userName(r.Context(), rq); user != "" {
		mt.MarkAutosaved(user)
	}
	if err := rq.c.Create(r.Context(), mt); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/ns/"+url.PathEscape(rq.ns)+"/traces/"+url.PathEscape(mt.Name), http.StatusSeeOther)
}

type traceData struct {
	MT            *v1alpha1.MessageTrace
	Summary       string
	Failed        *metav1.Condition
	Blocked       *metav1.Condition
	Counts        []StatusCount
	Filter        string
	Per           int
	PerChoices    []int
	Page          Page
	Rows          []RowView // the page's rows, ready to print
	OverThreshold bool
	Threshold     int
	// the details panel
	DetailID, DetailRcpt string
	DetailEvents         []string // the event filter; empty: every event
	EventTypes           []string // what the filter offers
	Details              *v1alpha1.MessageDetailsStatus
	DetailsPending       bool
	DetailsAsk           bool // the request came from elsewhere: ask before creating a details trace
	DetailsErr           string
}

func (s *Server) trace(w http.ResponseWriter, r *http.Request, rq *request) {
	mt := &v1alpha1.MessageTrace{}
	if err := rq.c.Get(r.Context(), client.ObjectKey{Namespace: rq.ns, Name: r.PathValue("name")}, mt); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	q := r.URL.Query()
	pg, _ := strconv.Atoi(q.Get("page"))
	per, _ := strconv.Atoi(q.Get("per"))
	if !slices.Contains(PerPageChoices, per) {
		per = 100
	}
	filter := q.Get("status")
	if !slices.Contains(allStatuses, filter) {
		filter = ""
	}
	d := traceData{MT: mt, Summary: Summary(&mt.Spec), Failed: failedCondition(mt), Counts: Counts(mt.Status.Counts), Filter: filter,
		Per: per, PerChoices: PerPageChoices, Page: Paginate(mt.Status.Rows, filter, pg, per), Threshold: statusThresholdDays}
	if c, _ := mt.Blocked(); c != nil {
		d.Blocked = c
	}
	if tr := mt.Status.TimeRange; tr != nil {
		d.OverThreshold = tr.End.Sub(tr.Start.Time) > statusThresholdDays*24*time.Hour
	} else {
		d.OverThreshold = RangeDays(&mt.Spec, mt.CreationTimestamp.Time) > statusThresholdDays
	}
	p := s.newPage(rq, "", "results", &d)
	p.Title = p.T("trace.title", mt.Name)
	if !mt.IsFinished() || (mt.Status.Report != nil && (mt.Status.Report.Phase == v1alpha1.ReportPhaseRunning || mt.Status.Report.Phase == v1alpha1.ReportPhaseRetrying || mt.Status.Report.Phase == "")) {
		p.Refresh = 2
	}
	if id, rcpt := q.Get("id"), q.Get("rcpt"); id != "" {
		d.DetailID, d.DetailRcpt, d.EventTypes = id, rcpt, eventTypes
		for _, e := range q["ev"] {
			if slices.Contains(eventTypes, e) && !slices.Contains(d.DetailEvents, e) {
				d.DetailEvents = append(d.DetailEvents, e)
			}
		}
		switch {
		case !sameOrigin(r):
			d.DetailsAsk = true
		default:
			det, err := s.details(r.Context(), rq, id, rcpt, d.DetailEvents)
			switch {
			case err != nil:
				d.DetailsErr = err.Error()
			case det == nil:
				d.DetailsPending, p.Refresh = true, 1
			default:
				d.Details = det
			}
		}
	}
	d.Rows = rowViews(p, &d)
	s.render(w, http.StatusOK, "trace", p)
}

// detailsName is the name of the details trace of one message and
// recipient: the same for every click on the row, so reopening a row
// reuses its answer (it is deleted 10 minutes after it finished).
func detailsName(id, rcpt string, events []string) string {
	h := sha256.Sum256([]byte(id + "\x00" + strings.ToLower(rcpt) + "\x00" + strings.Join(events, ",")))
	return "details-" + hex.EncodeToString(h[:10])
}

// detailsTTL is how long a details trace the console made is kept.
const detailsTTL = int32(600)

// details returns the events of one message for one recipient, through a
// details MessageTrace made with the user's own rights (the namespace's
// TracePolicy grants decide what it holds); nil while the manager works.
func (s *Server) details(ctx context.Context, rq *request, id, rcpt string, events []string) (*v1alpha1.MessageDetailsStatus, error) {
	key := client.ObjectKey{Namespace: rq.ns, Name: detailsName(id, rcpt, events)}
	mt := &v1alpha1.MessageTrace{}
	err := rq.c.Get(ctx, key, mt)
	if apierrors.IsNotFound(err) || (err == nil && mt.DeletionTimestamp != nil) {
		ttl := detailsTTL
		mt = &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: rq.ns, Name: key.Name},
			Spec: v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: id, Recipient: rcpt}, TTLSecondsAfterFinished: &ttl}}
		for _, e := range events {
			mt.Spec.Details.Events = append(mt.Spec.Details.Events, v1alpha1.EventType(e))
		}
		if err = rq.c.Create(ctx, mt); apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return nil, err
	}
	got, err := s.waitTrace(ctx, rq.c, key)
	if err != nil || got == nil {
		return nil, err
	}
	if c := failedCondition(got); c != nil {
		return nil, fmt.Errorf("%s: %s", c.Reason, c.Message)
	}
	if got.Status.Details == nil {
		return &v1alpha1.MessageDetailsStatus{MessageTraceID: id, Recipient: rcpt}, nil
	}
	return got.Status.Details, nil
}

// waitTrace waits up to the console's Wait for a trace to finish; nil
// when it has not.
func (s *Server) waitTrace(ctx context.Context, c client.Client, key client.ObjectKey) (*v1alpha1.MessageTrace, error) {
	deadline := time.Now().Add(s.opts.Wait)
	for {
		mt := &v1alpha1.MessageTrace{}
		if err := c.Get(ctx, key, mt); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if mt.IsFinished() {
			return mt, nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.opts.Poll):
		}
	}
}

type schedulesData struct {
	Items []v1alpha1.MessageTraceSchedule
}

func (s *Server) schedules(w http.ResponseWriter, r *http.Request, rq *request) {
	var l v1alpha1.MessageTraceScheduleList
	if err := rq.c.List(r.Context(), &l, client.InNamespace(rq.ns)); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	slices.SortFunc(l.Items, func(a, b v1alpha1.MessageTraceSchedule) int { return strings.Compare(a.Name, b.Name) })
	p := s.newPage(rq, "", "schedules", schedulesData{Items: l.Items})
	p.Title = p.T("schedules.title")
	s.render(w, http.StatusOK, "schedules", p)
}

type scheduleData struct {
	S    *v1alpha1.MessageTraceSchedule
	Runs []TraceView
	Spec string
}

func (s *Server) schedule(w http.ResponseWriter, r *http.Request, rq *request) {
	ms := &v1alpha1.MessageTraceSchedule{}
	if err := rq.c.Get(r.Context(), client.ObjectKey{Namespace: rq.ns, Name: r.PathValue("name")}, ms); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	var runs v1alpha1.MessageTraceList
	if err := rq.c.List(r.Context(), &runs, client.InNamespace(rq.ns), client.MatchingLabels{v1alpha1.LabelSchedule: ms.Name}); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	slices.SortFunc(runs.Items, func(a, b v1alpha1.MessageTrace) int {
		return cmp.Or(b.CreationTimestamp.Compare(a.CreationTimestamp.Time), strings.Compare(b.Name, a.Name))
	})
	d := scheduleData{S: ms, Spec: Summary(&ms.Spec.Template.Spec)}
	for i := range runs.Items {
		d.Runs = append(d.Runs, TraceView{MT: &runs.Items[i], Summary: Summary(&runs.Items[i].Spec)})
	}
	p := s.newPage(rq, "", "schedules", d)
	p.Title = p.T("schedule.title", ms.Name)
	if len(ms.Status.Active) > 0 || ms.Annotations[v1alpha1.AnnotationRunNow] != ms.Status.LastRunNowToken {
		p.Refresh = 2 // a run is on its way: show it when it finishes
	}
	s.render(w, http.StatusOK, "schedule", p)
}

// scheduleAction suspends, resumes or runs a schedule now, as the user.
func (s *Server) scheduleAction(w http.ResponseWriter, r *http.Request, rq *request) {
	ms := &v1alpha1.MessageTraceSchedule{}
	if err := rq.c.Get(r.Context(), client.ObjectKey{Namespace: rq.ns, Name: r.PathValue("name")}, ms); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	var patch string
	switch r.PathValue("action") {
	case "suspend":
		patch = `{"spec":{"suspend":true}}`
	case "resume":
		patch = `{"spec":{"suspend":false}}`
	case "run-now":
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.AnnotationRunNow, "console-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	default:
		s.fail(w, r, rq, http.StatusNotFound, "error.notfound", fmt.Errorf("no action %q", r.PathValue("action")))
		return
	}
	if err := rq.c.Patch(r.Context(), ms, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	back := "/ns/" + url.PathEscape(rq.ns) + "/schedules/" + url.PathEscape(ms.Name)
	if r.PostFormValue("back") == "list" {
		back = "/ns/" + url.PathEscape(rq.ns) + "/schedules"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// eventTypes are the event types the details panel can filter on (the
// API's -Event filter).
var eventTypes = []string{"Receive", "Submit", "Resolve", "Redirect", "Expand", "Transfer", "Send", "Scan", "Defer", "Deliver", "Save",
	"Fail", "Quarantine", "FilterAsSpam", "Notify", "Sieve"}

// userName is the user's name as the API server knows it (a
// SelfSubjectReview, which every authenticated user may make), remembered
// per session or token; "" when it cannot be learnt.
func (s *Server) userName(ctx context.Context, rq *request) string {
	s.usersMu.Lock()
	u, ok := s.users[rq.identity]
	s.usersMu.Unlock()
	if ok && time.Now().Before(u.until) {
		return u.name
	}
	rv := &authenticationv1.SelfSubjectReview{}
	if err := rq.c.Create(ctx, rv); err != nil {
		s.log.Warn("learning the user's name (SelfSubjectReview)", "err", err)
		return ""
	}
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if len(s.users) > 1000 {
		clear(s.users)
	}
	s.users[rq.identity] = cachedUser{name: rv.Status.UserInfo.Username, until: time.Now().Add(10 * time.Minute)}
	return rv.Status.UserInfo.Username
}

type cachedUser struct {
	name  string
	until time.Time
}

// continueTrace starts the trace of the rows after a trace's last one, with
// its status.continue token (as a Kubernetes list's continue).
func (s *Server) continueTrace(w http.ResponseWriter, r *http.Request, rq *request) {
	prev := &v1alpha1.MessageTrace{}
	if err := rq.c.Get(r.Context(), client.ObjectKey{Namespace: rq.ns, Name: r.PathValue("name")}, prev); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	if prev.Status.Continue == "" {
		http.Redirect(w, r, "/ns/"+url.PathEscape(rq.ns)+"/traces/"+url.PathEscape(prev.Name), http.StatusSeeOther)
		return
	}
	spec := *prev.Spec.DeepCopy()
	spec.Continue = prev.Status.Continue
	if spec.Report != nil {
		spec.Report.Always = false // the first page's report already holds every row
	}
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: rq.ns, GenerateName: "trace-",
		Annotations: map[string]string{annotationContinues: prev.Name}}, Spec: spec}
	if err := rq.c.Create(r.Context(), mt); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/ns/"+url.PathEscape(rq.ns)+"/traces/"+url.PathEscape(mt.Name), http.StatusSeeOther)
}

// annotationContinues names the trace whose rows a continuation follows
// (the console's own note, for the "previous rows" link).
const annotationContinues = "console.mailtrace.io/continues"

// saveQuery saves a trace's filters as a custom query: a
// MessageTraceSchedule with no schedule, run on demand, keeping its history.
func (s *Server) saveQuery(w http.ResponseWriter, r *http.Request, rq *request) {
	mt := &v1alpha1.MessageTrace{}
	if err := rq.c.Get(r.Context(), client.ObjectKey{Namespace: rq.ns, Name: r.PathValue("name")}, mt); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	ms, err := SavedQuery(mt, strings.TrimSpace(r.PostFormValue("queryName")))
	if err != nil {
		s.fail(w, r, rq, http.StatusUnprocessableEntity, "error.save", err)
		return
	}
	if err := rq.c.Create(r.Context(), ms); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsAlreadyExists(err) {
			s.fail(w, r, rq, http.StatusUnprocessableEntity, "error.save", err)
			return
		}
		s.kubeFail(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/ns/"+url.PathEscape(rq.ns)+"/schedules/"+url.PathEscape(ms.Name), http.StatusSeeOther)
}

// SavedQuery is the custom query of a trace's filters: a schedule with no
// cron schedule, whose runs trace the same length of time ending when they
// run.
func SavedQuery(mt *v1alpha1.MessageTrace, name string) (*v1alpha1.MessageTraceSchedule, error) {
	if name == "" {
		return nil, fmt.Errorf("a custom query needs a name")
	}
	window := 48 * time.Hour
	switch {
	case mt.Spec.Window != nil:
		window = mt.Spec.Window.Duration
	case mt.Status.TimeRange != nil:
		window = mt.Status.TimeRange.End.Sub(mt.Status.TimeRange.Start.Time)
	case mt.Spec.StartTime != nil && mt.Spec.EndTime != nil:
		window = mt.Spec.EndTime.Sub(mt.Spec.StartTime.Time)
	}
	spec := *mt.Spec.DeepCopy()
	spec.StartTime, spec.EndTime, spec.Window, spec.Continue, spec.Details, spec.TTLSecondsAfterFinished = nil, nil, nil, "", nil, nil
	return &v1alpha1.MessageTraceSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: mt.Namespace, Name: name},
		Spec: v1alpha1.MessageTraceScheduleSpec{Window: metav1.Duration{Duration: window}, Template: v1alpha1.MessageTraceTemplate{Spec: spec}}}, nil
}

// RowView is one results row as the table prints it: what the template
// would otherwise compute per row (its link, time, status text, label),
// computed once here, so that a page of 1,000 rows stays quick.
type RowView struct {
	v1alpha1.TraceRow
	Link       template.URL // the page's query with this row's details
	When       string
	StatusText string
	Label      string
	Selected   bool
}

func rowViews(p *page, d *traceData) []RowView {
	base := url.Values{}
	if d.Filter != "" {
		base.Set("status", d.Filter)
	}
	base.Set("per", strconv.Itoa(d.Per))
	base.Set("page", strconv.Itoa(d.Page.Number))
	prefix := "?" + base.Encode()
	status := map[v1alpha1.DeliveryStatus]string{}
	out := make([]RowView, len(d.Page.Rows))
	for i, r := range d.Page.Rows {
		link := prefix + "&id=" + url.QueryEscape(r.MessageTraceID)
		if r.Recipient != "" {
			link += "&rcpt=" + url.QueryEscape(r.Recipient)
		}
		st, ok := status[r.Status]
		if !ok {
			st = p.Status(r.Status)
			status[r.Status] = st
		}
		out[i] = RowView{TraceRow: r, Link: template.URL(link), When: p.Time(r.Received), StatusText: st,
			Label:    p.T("trace.open", r.Sender, r.Recipient),
			Selected: d.DetailID != "" && r.MessageTraceID == d.DetailID && r.Recipient == d.DetailRcpt}
	}
	return out
}
