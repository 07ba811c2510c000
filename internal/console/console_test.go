package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// TestCatalogsComplete: both languages have every message, and every
// message a template names (directly or through a prefix and a value)
// exists.
func TestCatalogsComplete(t *testing.T) {
	cats, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	en, ja := cats["en"], cats["ja"]
	for k := range en.msgs {
		if _, ok := ja.msgs[k]; !ok {
			t.Errorf("ja lacks %q", k)
		}
	}
	for k := range ja.msgs {
		if _, ok := en.msgs[k]; !ok {
			t.Errorf("en lacks %q", k)
		}
	}
	used := regexp.MustCompile(`T "([a-zA-Z.]+)"`)
	err = fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFS.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			if _, ok := en.msgs[m[1]]; !ok {
				t.Errorf("%s uses %q, which no catalog has", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dynamic := map[string][]string{
		"status.":     allStatuses,
		"phase.":      {"", "Pending", "Running", "Succeeded", "Failed"},
		"report.":     {"", "Running", "Retrying", "Completed", "Failed"},
		"direction.":  {"All", "Inbound", "Outbound", "Internal"},
		"match.":      {"Contains", "StartsWith", "EndsWith"},
		"reportType.": {"Summary", "Detailed"},
		"event.": {"Receive", "Submit", "Resolve", "Redirect", "Transfer", "Send", "Notify", "Scan", "Sieve", "Deliver", "Save",
			"Defer", "Fail", "Expand", "Quarantine", "FilterAsSpam"},
	}
	for _, q := range DefaultQueries(nil) {
		dynamic["default."] = append(dynamic["default."], q.ID, q.ID+".hint")
	}
	for prefix, vals := range dynamic {
		for _, v := range vals {
			if _, ok := en.msgs[prefix+v]; !ok {
				t.Errorf("no message %q", prefix+v)
			}
		}
	}
}

func TestPickLanguage(t *testing.T) {
	for _, c := range []struct{ header, want string }{
		{"", "en"}, {"ja", "ja"}, {"ja-JP,ja;q=0.9,en;q=0.8", "ja"}, {"en-GB,en;q=0.9", "en"}, {"fr-FR", "en"},
		{"de-DE, ja;q=0.5", "ja"}, {"en-US,ja;q=0.1", "en"}, {"*", "en"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Language", c.header)
		if got := pickLanguage(r); got != c.want {
			t.Errorf("Accept-Language %q: %s, want %s", c.header, got, c.want)
		}
	}
}

func TestFormSpec(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	cases := []struct {
		name      string
		form      url.Values
		check     func(*testing.T, v1alpha1.MessageTraceSpec)
		errFields []string
	}{
		{"the seed's 2-day trace for one recipient with the summary report",
			url.Values{"recipients": {"info@with-wit.com"}, "range": {"2"}, "report": {"1"}, "reportType": {"Summary"}},
			func(t *testing.T, s v1alpha1.MessageTraceSpec) {
				if len(s.RecipientAddresses) != 1 || s.RecipientAddresses[0] != "info@with-wit.com" || s.Window.Duration != 2*day ||
					s.Report == nil || !s.Report.Always || s.Report.Type != v1alpha1.ReportSummary || s.StartTime != nil {
					t.Errorf("%+v", s)
				}
			}, nil},
		{"every preset", url.Values{"range": {"90"}}, func(t *testing.T, s v1alpha1.MessageTraceSpec) {
			if s.Window.Duration != 90*day || s.Report != nil {
				t.Errorf("%+v", s)
			}
		}, nil},
		{"lists split on commas, spaces and lines; every filter",
			url.Values{"senders": {"a@x.example, *@y.example\nb@z.example"}, "range": {"7"}, "status": {"Failed", "Pending"},
				"messageId": {"<id@x>"}, "traceId": {"abc"}, "direction": {"Outbound"}, "originalClientIP": {"203.0.113.0/24"},
				"fromIP": {"10.0.0.1"}, "toIP": {"2001:db8::1"}, "subject": {"invoice"}, "subjectMatch": {"StartsWith"}, "limit": {"1000"}, "gzip": {"1"}, "reportType": {"Detailed"}},
			func(t *testing.T, s v1alpha1.MessageTraceSpec) {
				if len(s.SenderAddresses) != 3 || len(s.DeliveryStatuses) != 2 || s.Direction != "Outbound" || s.OriginalClientIP != "203.0.113.0/24" ||
					s.FromIP != "10.0.0.1" || s.ToIP != "2001:db8::1" || s.Subject == nil || s.Subject.Match != "StartsWith" || s.ResultLimit != 1000 ||
					s.MessageID != "<id@x>" || s.MessageTraceID != "abc" || s.Report == nil || !s.Report.Gzip || s.Report.Always || s.Report.Type != v1alpha1.ReportDetailed {
					t.Errorf("%+v", s)
				}
			}, nil},
		{"direction All is no filter", url.Values{"direction": {"All"}}, func(t *testing.T, s v1alpha1.MessageTraceSpec) {
			if s.Direction != "" || s.Window.Duration != 2*day {
				t.Errorf("%+v", s)
			}
		}, nil},
		{"a custom range is read in the chosen time zone",
			url.Values{"range": {"custom"}, "start": {"2026-03-01T09:00"}, "end": {"2026-03-02T09:00"}, "tz": {"Asia/Tokyo"}},
			func(t *testing.T, s v1alpha1.MessageTraceSpec) {
				if s.Window != nil || !s.StartTime.Equal(&metav1.Time{Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}) ||
					!s.EndTime.Equal(&metav1.Time{Time: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}) {
					t.Errorf("%v %v", s.StartTime, s.EndTime)
				}
			}, nil},
		{"a custom range without an end ends now",
			url.Values{"range": {"custom"}, "start": {"2026-03-09T12:00"}, "tz": {"UTC"}},
			func(t *testing.T, s v1alpha1.MessageTraceSpec) {
				if !s.EndTime.Time.Equal(now) {
					t.Errorf("end %v", s.EndTime)
				}
			}, nil},
		{"bad input is reported per field", url.Values{"senders": {"not-an-address"}, "recipients": {"@x"}, "fromIP": {"999.1.1.1"},
			"status": {"Lost"}, "limit": {"5000"}, "range": {"3"}}, nil, []string{"senders", "recipients", "fromIP", "status", "limit", "range"}},
		{"a custom range needs a start, a known zone, an end after it, at most 90 days",
			url.Values{"range": {"custom"}, "tz": {"Mars/Olympus"}}, nil, []string{"tz", "start"}},
		{"end before start", url.Values{"range": {"custom"}, "tz": {"UTC"}, "start": {"2026-03-02T00:00"}, "end": {"2026-03-01T00:00"}}, nil, []string{"end"}},
		{"over 90 days", url.Values{"range": {"custom"}, "tz": {"UTC"}, "start": {"2025-11-01T00:00"}, "end": {"2026-03-01T00:00"}}, nil, []string{"end"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, errs := ParseForm(c.form).Spec(now)
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
			}
			for _, want := range c.errFields {
				if !strings.Contains(strings.Join(fields, " "), want) {
					t.Errorf("no error on %s: %+v", want, errs)
				}
			}
			if c.errFields == nil && len(errs) > 0 {
				t.Errorf("errors %+v", errs)
			}
			if c.check != nil {
				c.check(t, spec)
			}
		})
	}
}

// TestFormOfRoundTrip: a trace's spec, shown as the form (a query used as
// the starting point of another), posts back as the same spec.
func TestFormOfRoundTrip(t *testing.T) {
	st, en := metav1.NewTime(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)), metav1.NewTime(time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC))
	for _, s := range []v1alpha1.MessageTraceSpec{
		{SenderAddresses: []v1alpha1.AddressPattern{"*@a.example", "b@c.example"}, Window: &metav1.Duration{Duration: 7 * 24 * time.Hour},
			DeliveryStatuses: []v1alpha1.DeliveryStatus{"Failed"}, Direction: "Inbound", FromIP: "10.0.0.0/8", Subject: &v1alpha1.SubjectFilter{Value: "x", Match: "EndsWith"},
			ResultLimit: 20, Report: &v1alpha1.ReportSpec{Always: true, Type: v1alpha1.ReportDetailed, Gzip: true}},
		{RecipientAddresses: []v1alpha1.AddressPattern{"info@a.example"}, StartTime: &st, EndTime: &en, MessageID: "<m@x>"},
	} {
		loc, _ := time.LoadLocation("Asia/Tokyo")
		f := FormOf(&s, "Asia/Tokyo", loc)
		v := url.Values{"senders": {f.Senders}, "recipients": {f.Recipients}, "range": {f.Range}, "start": {f.Start}, "end": {f.End}, "tz": {f.TimeZone},
			"status": f.Statuses, "messageId": {f.MessageID}, "traceId": {f.TraceID}, "direction": {f.Direction}, "originalClientIP": {f.OriginalClientIP},
			"fromIP": {f.FromIP}, "toIP": {f.ToIP}, "subject": {f.Subject}, "subjectMatch": {f.SubjectMatch}, "limit": {f.Limit}, "reportType": {f.ReportType}}
		if f.Report {
			v.Set("report", "1")
		}
		if f.Gzip {
			v.Set("gzip", "1")
		}
		got, errs := ParseForm(v).Spec(time.Now())
		if len(errs) > 0 {
			t.Fatalf("%+v", errs)
		}
		if Summary(&got) != Summary(&s) || (got.Report == nil) != (s.Report == nil) || got.ResultLimit != s.ResultLimit ||
			(s.EndTime != nil && !got.EndTime.Equal(s.EndTime)) {
			t.Errorf("round trip:\n got %s %+v\nwant %s %+v", Summary(&got), got, Summary(&s), s)
		}
	}
}

func TestDefaultQueries(t *testing.T) {
	qs := DefaultQueries([]string{"example.com", "@example.org"})
	if len(qs) != 5 {
		t.Fatalf("%d default queries, want the seeds' 5", len(qs))
	}
	want := map[string]string{
		"sent":        "from *@example.com, *@example.org · last 1d",
		"received":    "to *@example.com, *@example.org · last 1d",
		"pending":     "to *@example.com, *@example.org · Pending · last 2d",
		"quarantined": "Quarantined · last 7d",
		"failed":      "Failed · last 7d",
	}
	for _, q := range qs {
		if got := Summary(&q.Spec); got != want[q.ID] {
			t.Errorf("%s: %q, want %q", q.ID, got, want[q.ID])
		}
	}
	for _, q := range DefaultQueries(nil) {
		if q.ID == "sent" && q.Spec.Direction != "Outbound" || q.ID == "received" && q.Spec.Direction != "Inbound" {
			t.Errorf("without domains %s: %+v", q.ID, q.Spec)
		}
	}
}

func TestPaginate(t *testing.T) {
	rows := make([]v1alpha1.TraceRow, 250)
	for i := range rows {
		rows[i].Status = "Delivered"
		if i%10 == 0 {
			rows[i].Status = "Failed"
		}
	}
	for _, c := range []struct {
		status            string
		number, per       int
		first, last, of   int
		pages, prev, next int
	}{
		{"", 1, 100, 1, 100, 250, 3, 0, 2},
		{"", 3, 100, 201, 250, 250, 3, 2, 0},
		{"", 9, 100, 201, 250, 250, 3, 2, 0}, // past the end: the last page
		{"", 0, 7, 1, 100, 250, 3, 0, 2},     // an unknown page size: 100
		{"", 1, 1000, 1, 250, 250, 1, 0, 0},
		{"Failed", 1, 50, 1, 25, 25, 1, 0, 0},
		{"Pending", 1, 50, 0, 0, 0, 1, 0, 0},
	} {
		p := Paginate(rows, c.status, c.number, c.per)
		if p.First != c.first || p.Last != c.last || p.Of != c.of || p.Pages != c.pages || p.PrevPage != c.prev || p.NextPg != c.next || len(p.Rows) != max(0, c.last-c.first+1)-boolInt(c.first == 0) {
			t.Errorf("%+v: got first %d last %d of %d pages %d prev %d next %d rows %d", c, p.First, p.Last, p.Of, p.Pages, p.PrevPage, p.NextPg, len(p.Rows))
		}
		if c.status == "Failed" {
			for _, r := range p.Rows {
				if r.Status != "Failed" {
					t.Errorf("the Failed filter kept a %s row", r.Status)
				}
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// newLocal is a local console whose client points nowhere: these tests
// stop before any Kubernetes request.
func newLocal(t testing.TB) (*Server, *httptest.Server) {
	t.Helper()
	c, err := client.New(&rest.Config{Host: "http://127.0.0.1:1"}, client.Options{Scheme: NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Mode: Local, Client: c, Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	s.local.allowHost(strings.TrimPrefix(hs.URL, "http://"))
	return s, hs
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// TestLocalSession: the one-time token opens one session, with a cookie
// scripts cannot read and other sites cannot send; nothing else does.
func TestLocalSession(t *testing.T) {
	s, hs := newLocal(t)
	hc := &http.Client{CheckRedirect: noRedirect}
	get := func(path string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("/"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("no session: %d", r.StatusCode)
	}
	if r := get("/login?token=guess"); r.StatusCode != http.StatusForbidden {
		t.Errorf("a wrong token: %d", r.StatusCode)
	}
	u, _ := url.Parse(s.LoginURL(strings.TrimPrefix(hs.URL, "http://")))
	r := get(u.RequestURI())
	if r.StatusCode != http.StatusSeeOther || len(r.Cookies()) != 1 {
		t.Fatalf("the token: %d %v", r.StatusCode, r.Cookies())
	}
	ck := r.Cookies()[0]
	_, port, _ := strings.Cut(strings.TrimPrefix(hs.URL, "http://"), ":")
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Name != sessionCookie+"_"+port || ck.Value == "" {
		t.Errorf("session cookie %+v", ck)
	}
	if r := get(u.RequestURI()); r.StatusCode != http.StatusForbidden {
		t.Errorf("the token used twice: %d", r.StatusCode)
	}
	if r := get("/", ck); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/ns/team-a/" {
		t.Errorf("with the session: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := get("/", &http.Cookie{Name: ck.Name, Value: "forged"}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a forged session: %d", r.StatusCode)
	}
	if r := get("/static/console.css"); r.StatusCode != http.StatusOK {
		t.Errorf("static: %d", r.StatusCode)
	}

	// DNS rebinding: another host name for the same address.
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/", nil)
	req.Host = "evil.example:" + port
	req.AddCookie(ck)
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("another Host: %v %v", resp, err)
	}

	// A form without the CSRF token, or from another site, changes nothing.
	post := func(form url.Values, headers map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/ns/team-a/traces", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		req.AddCookie(ck)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	token := csrfToken(s.key, ck.Value)
	if c := post(url.Values{"range": {"2"}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); c != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", c)
	}
	if c := post(url.Values{"range": {"2"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); c != http.StatusForbidden {
		t.Errorf("from another site: %d", c)
	}
	if c := post(url.Values{"range": {"2"}, "csrf": {csrfToken(s.key, "another session")}}, map[string]string{"Origin": hs.URL}); c != http.StatusForbidden {
		t.Errorf("another session's token: %d", c)
	}
	// The right token from the console's page passes the checks (and reaches
	// the form's own validation: an invalid range comes back as the form).
	if c := post(url.Values{"range": {"3"}, "csrf": {token}}, map[string]string{"Origin": hs.URL}); c != http.StatusUnprocessableEntity {
		t.Errorf("a checked form with a bad range: %d, want the form back (422)", c)
	}
}

// TestProxyMode: the in-cluster console has no credentials of its own and
// answers nothing without the user's bearer token.
func TestProxyMode(t *testing.T) {
	if _, err := New(Options{Mode: Proxy, Config: &rest.Config{Host: "https://k8s", BearerToken: "sa-token"}}); err == nil {
		t.Error("a proxied console accepted a config with a token of its own")
	}
	s, err := New(Options{Mode: Proxy, Config: &rest.Config{Host: "https://127.0.0.1:1"}, Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/ns/team-a/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no bearer token: %d", resp.StatusCode)
	}
	c1, c2 := csrfToken(s.key, identityOfBearer("alice-token")), csrfToken(s.key, identityOfBearer("bob-token"))
	if c1 == c2 || !csrfOK(s.key, identityOfBearer("alice-token"), c1) || csrfOK(s.key, identityOfBearer("bob-token"), c1) {
		t.Error("CSRF tokens are not bound to the user's token")
	}
}

// TestPagesRender executes every page's template with the data a real
// answer gives, in both languages, and checks what screen readers and
// keyboards rely on.
func TestPagesRender(t *testing.T) {
	s, _ := newLocal(t)
	now := metav1.NewTime(time.Date(2026, 3, 10, 3, 0, 0, 0, time.UTC))
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: "trace-x", Namespace: "team-a", CreationTimestamp: now},
		Spec: v1alpha1.MessageTraceSpec{RecipientAddresses: []v1alpha1.AddressPattern{"info@a.example"}, Window: &metav1.Duration{Duration: 48 * time.Hour}},
		Status: v1alpha1.MessageTraceStatus{Phase: v1alpha1.PhaseSucceeded, TotalMatches: 2, ReturnedRows: 2,
			Conditions: []metav1.Condition{{Type: string(v1alpha1.ConditionSucceeded), Status: metav1.ConditionTrue, Reason: "Completed"}},
			TimeRange:  &v1alpha1.TimeRange{Start: metav1.NewTime(now.Add(-48 * time.Hour)), End: now, Duration: "48h"},
			Counts:     &v1alpha1.StatusCounts{Delivered: 1, Failed: 1},
			Rows: []v1alpha1.TraceRow{{Received: now, Sender: "a@b.example", Recipient: "info@a.example", Subject: "<script>x</script>", Status: "Failed", MessageTraceID: "m1"},
				{Received: now, Sender: "c@b.example", Recipient: "info@a.example", Subject: "件名", Status: "Delivered", MessageTraceID: "m2", Folder: "Junk"}},
			Report: &v1alpha1.ReportStatus{Phase: v1alpha1.ReportPhaseCompleted, Rows: 2, SHA256: "abc"}}}
	det := &v1alpha1.MessageDetailsStatus{MessageTraceID: "m1", Recipient: "info@a.example", TotalEvents: 2, Events: []v1alpha1.MessageEvent{
		{Time: now, Event: "Receive", Source: "smtpd", ClientIP: "198.51.100.7"},
		{Time: now, Event: "Fail", DSN: "5.1.1", SMTPResponse: "550 5.1.1 User unknown", Relay: "mx[192.0.2.1]:25"}}}
	sched := v1alpha1.MessageTraceSchedule{ObjectMeta: metav1.ObjectMeta{Name: "weekly"}, Spec: v1alpha1.MessageTraceScheduleSpec{Schedule: "0 7 * * 1", TimeZone: "UTC",
		Window: metav1.Duration{Duration: 7 * 24 * time.Hour}}, Status: v1alpha1.MessageTraceScheduleStatus{NextScheduleTime: &now}}
	f := ParseForm(url.Values{"senders": {"bad"}})
	_, errs := f.Spec(now.Time)
	pages := []struct {
		name string
		data any
		want []string
	}{
		{"home", homeData{Defaults: DefaultQueries([]string{"a.example"}), Custom: []v1alpha1.MessageTraceSchedule{sched},
			Recent: []TraceView{{MT: mt, Summary: "x"}}, Reports: []TraceView{{MT: mt, Summary: "x"}}}, []string{`id="default-failed"`, `scope="col"`, `name="csrf"`, "weekly", "trace-x"}},
		{"new", newData{Form: f, Errors: map[string]string{"senders": errs[0].Msg}, Presets: Presets, Statuses: allStatuses, TimeZones: timeZones, Threshold: 10},
			[]string{`<label for="senders">`, `aria-invalid="true"`, `id="senders-err"`, `<legend>`, `value="90"`, `id="status-FilteredAsSpam"`, `for="tz"`}},
		{"trace", &traceData{MT: mt, Counts: Counts(mt.Status.Counts), Per: 100, PerChoices: PerPageChoices, Page: Paginate(mt.Status.Rows, "", 1, 100),
			DetailID: "m1", DetailRcpt: "info@a.example", Details: det},
			[]string{`scope="col"`, "&lt;script&gt;", `id="details"`, "5.1.1", "550 5.1.1 User unknown", `id="download"`, `aria-selected="true"`, `<caption>`, `<td class="folder">Junk</td>`}},
		{"schedules", schedulesData{Items: []v1alpha1.MessageTraceSchedule{sched}}, []string{"weekly", "run-now", "suspend"}},
		{"schedule", scheduleData{S: &sched, Runs: []TraceView{{MT: mt}}}, []string{`id="run-now"`, `id="runs"`, "trace-x"}},
		{"error", errorData{Key: "error.forbidden", Detail: "forbidden: User \"alice\" cannot list"}, []string{"alice"}},
	}
	for _, lang := range []string{"en", "ja"} {
		for _, pg := range pages {
			rq := &request{ns: "team-a", lang: lang, tz: "Asia/Tokyo", loc: time.FixedZone("JST", 9*3600), csrf: "tok"}
			w := httptest.NewRecorder()
			p := s.newPage(rq, "title", "", pg.data)
			if d, ok := pg.data.(*traceData); ok {
				d.Rows = rowViews(p, d)
			}
			s.render(w, http.StatusOK, pg.name, p)
			body := w.Body.String()
			if w.Code != http.StatusOK {
				t.Errorf("%s/%s: %d %s", lang, pg.name, w.Code, body)
				continue
			}
			for _, want := range append(pg.want, `<html lang="`+lang+`">`, `href="#main"`) {
				if !strings.Contains(body, want) {
					t.Errorf("%s/%s lacks %q", lang, pg.name, want)
				}
			}
			if strings.Contains(body, "<script>x") {
				t.Errorf("%s/%s: a subject was not escaped", lang, pg.name)
			}
		}
	}
}

// TestAutosaved: home lists the user's own autosaved queries only.
func TestAutosaved(t *testing.T) {
	mk := func(name, user string, autosave bool) v1alpha1.MessageTrace {
		mt := v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if autosave {
			mt.MarkAutosaved(user)
		}
		return mt
	}
	items := []v1alpha1.MessageTrace{mk("a1", "alice", true), mk("b1", "bob", true), mk("plain", "", false), mk("a2", "alice", true)}
	var names []string
	for _, mt := range Autosaved(items, "alice") {
		names = append(names, mt.Name)
	}
	if strings.Join(names, " ") != "a1 a2" {
		t.Errorf("alice's autosaved queries: %v", names)
	}
	if len(Autosaved(items, "")) != len(items) {
		t.Error("with no user name known, every query should be listed")
	}
}

// TestSavedQuery: a trace's filters become an on-demand schedule covering
// the same length of time.
func TestSavedQuery(t *testing.T) {
	st, en := metav1.NewTime(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)), metav1.NewTime(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC))
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "trace-x"},
		Spec: v1alpha1.MessageTraceSpec{RecipientAddresses: []v1alpha1.AddressPattern{"info@a.example"}, StartTime: &st, EndTime: &en, Continue: "tok"}}
	ms, err := SavedQuery(mt, "info-box")
	if err != nil {
		t.Fatal(err)
	}
	if ms.Name != "info-box" || ms.Namespace != "team-a" || !ms.Spec.OnDemand() || ms.Spec.Window.Duration != 72*time.Hour ||
		ms.Spec.Template.Spec.StartTime != nil || ms.Spec.Template.Spec.Continue != "" || len(ms.Spec.Template.Spec.RecipientAddresses) != 1 {
		t.Errorf("%+v", ms.Spec)
	}
	if _, err := SavedQuery(mt, ""); err == nil {
		t.Error("a custom query without a name")
	}
}
