package messagetrace

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestContinueToken(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(48 * time.Hour)
	spec := v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{"*@example.com"}, Window: &metav1.Duration{Duration: time.Hour}}
	cur := mailflow.NewCursor(mailflow.Row{Received: start.Add(time.Hour), MessageTraceID: "m1", Recipient: "a@example.org"})
	tok := EncodeContinue(&spec, start, end, cur)

	// The follow-up's own range, limit, report and defaults do not matter.
	follow := v1alpha1.MessageTraceSpec{SenderAddresses: spec.SenderAddresses, Direction: "All", ResultLimit: 7,
		Report: &v1alpha1.ReportSpec{Always: true}, Continue: tok}
	s, e, c, err := DecodeContinue(&follow, tok)
	if err != nil || !s.Equal(start) || !e.Equal(end) || c != cur {
		t.Fatalf("round trip: %s %s %q %v; want %s %s %q", s, e, c, err, start, end, cur)
	}
	for _, tc := range []struct {
		name  string
		spec  v1alpha1.MessageTraceSpec
		token string
		want  string
	}{
		{"other senders", v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{"*@example.net"}}, tok, "other filters"},
		{"a status more", v1alpha1.MessageTraceSpec{SenderAddresses: spec.SenderAddresses, DeliveryStatuses: []v1alpha1.DeliveryStatus{"Failed"}}, tok, "other filters"},
		{"a subject", v1alpha1.MessageTraceSpec{SenderAddresses: spec.SenderAddresses, Subject: &v1alpha1.SubjectFilter{Value: "x"}}, tok, "other filters"},
		{"not base64", spec, "%%%", "not a continue token"},
		{"not a token", spec, "eyJ4IjoxfQ", "not a continue token"},
	} {
		if _, _, _, err := DecodeContinue(&tc.spec, tc.token); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// Defaults: Contains is the subject's default match.
	a := v1alpha1.MessageTraceSpec{Subject: &v1alpha1.SubjectFilter{Value: "x"}}
	b := v1alpha1.MessageTraceSpec{Subject: &v1alpha1.SubjectFilter{Value: "x", Match: "Contains"}, Direction: "All"}
	if FiltersDigest(&a) != FiltersDigest(&b) {
		t.Error("a spec and its defaulted copy have different digests")
	}
}

func TestNextCursor(t *testing.T) {
	rows := []mailflow.Row{{MessageTraceID: "a"}, {MessageTraceID: "b"}, {MessageTraceID: "c"}}
	page := mailflow.Page{Rows: rows, Next: "next"}
	for _, tc := range []struct {
		page mailflow.Page
		kept int
		want mailflow.Cursor
	}{
		{page, 3, "next"},
		{mailflow.Page{Rows: rows}, 3, ""},
		{page, 2, mailflow.NewCursor(rows[1])},
		{mailflow.Page{Rows: rows}, 1, mailflow.NewCursor(rows[0])},
		{page, 0, ""},
	} {
		if got := NextCursor(tc.page, tc.kept); got != tc.want {
			t.Errorf("NextCursor(next %q, kept %d) = %q, want %q", tc.page.Next, tc.kept, got, tc.want)
		}
	}
}

// TestPagingWithContinue pages through a trace with small pages: each
// follow-up trace (spec.continue, no range of its own: the token carries
// the first page's) answers the rows after the previous page's, until none
// follow; together they are the whole answer, in order, once.
func TestPagingWithContinue(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	d0 := day0()
	st := openSQLite(t)
	seedStore(t, st, d0)
	startManager(t, env, ns, st, nil, Options{})

	from, to := metav1.NewTime(d0.Add(-time.Hour)), metav1.NewTime(d0.Add(5*day))
	whole := create(t, env.Client, ns, "whole", v1alpha1.MessageTraceSpec{StartTime: &from, EndTime: &to})
	want := waitUntil(t, env.Client, whole, "finished", isFinished)
	requireCondition(t, want, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
	if want.Status.Continue != "" || len(want.Status.Rows) < 10 {
		t.Fatalf("the whole answer: %d rows, continue %q", len(want.Status.Rows), want.Status.Continue)
	}

	var got []string
	spec := v1alpha1.MessageTraceSpec{StartTime: &from, EndTime: &to, ResultLimit: 4}
	pages := 0
	for name := "page-0"; ; {
		mt := waitUntil(t, env.Client, create(t, env.Client, ns, name, spec), "finished", isFinished)
		c := requireCondition(t, mt, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
		pages++
		if mt.Status.TotalMatches != want.Status.TotalMatches || mt.Status.Report != nil || !mt.Status.TimeRange.Start.Equal(&want.Status.TimeRange.Start) {
			t.Errorf("%s: total %d (want %d), report %v, range %v (want %v)", name, mt.Status.TotalMatches, want.Status.TotalMatches,
				mt.Status.Report, mt.Status.TimeRange, want.Status.TimeRange)
		}
		for _, r := range mt.Status.Rows {
			got = append(got, r.MessageTraceID+" "+r.Recipient)
		}
		if mt.Status.Continue == "" {
			if pages > 1 && !strings.Contains(c.Message, "the last") {
				t.Errorf("the last page's message: %q", c.Message)
			}
			break
		}
		if pages > 10 {
			t.Fatal("more than 10 pages of 4 rows")
		}
		spec = v1alpha1.MessageTraceSpec{ResultLimit: 4, Continue: mt.Status.Continue}
		name = "page-" + string(rune('0'+pages))
	}
	var all []string
	for _, r := range want.Status.Rows {
		all = append(all, r.MessageTraceID+" "+r.Recipient)
	}
	if strings.Join(got, "|") != strings.Join(all, "|") {
		t.Errorf("pages of 4 rows:\n%q\nthe whole answer:\n%q", got, all)
	}
	if wantPages := (len(all) + 3) / 4; pages != wantPages {
		t.Errorf("%d pages, want %d", pages, wantPages)
	}

	// A token used with other filters is refused.
	other := create(t, env.Client, ns, "other", v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{"*@example.com"},
		Continue: EncodeContinue(&v1alpha1.MessageTraceSpec{}, d0, d0.Add(day), "eyJyIjowfQ")})
	mt := waitUntil(t, env.Client, other, "finished", isFinished)
	c := requireCondition(t, mt, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(c.Message, "other filters") {
		t.Errorf("a token of other filters: %q", c.Message)
	}
}
