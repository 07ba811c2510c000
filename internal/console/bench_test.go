package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// BenchmarkResultsPage1000 renders the results page of a trace holding
// 1,000 rows, all on one page (the most status holds), with a details
// panel: the server's share of "responsive with 1,000 rows".
func BenchmarkResultsPage1000(b *testing.B) {
	s, _ := newLocal(b)
	now := time.Date(2026, 3, 10, 3, 0, 0, 0, time.UTC)
	mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: "trace-x", Namespace: "team-a"},
		Status: v1alpha1.MessageTraceStatus{Phase: v1alpha1.PhaseSucceeded, TotalMatches: 1000, ReturnedRows: 1000,
			Conditions: []metav1.Condition{{Type: string(v1alpha1.ConditionSucceeded), Status: metav1.ConditionTrue, Reason: "Completed"}},
			Counts:     &v1alpha1.StatusCounts{Delivered: 900, Failed: 100}}}
	for i := range 1000 {
		st := v1alpha1.DeliveryStatus("Delivered")
		if i%10 == 0 {
			st = "Failed"
		}
		mt.Status.Rows = append(mt.Status.Rows, v1alpha1.TraceRow{Received: metav1.NewTime(now.Add(-time.Duration(i) * time.Minute)),
			Sender: fmt.Sprintf("sender%d@example.com", i), Recipient: fmt.Sprintf("rcpt%d@partner.example", i),
			Subject: fmt.Sprintf("Invoice %d for March", i), Status: st, MessageTraceID: fmt.Sprintf("%020x", i)})
	}
	rq := &request{ns: "team-a", lang: "ja", tz: "Asia/Tokyo", loc: time.FixedZone("JST", 9*3600), csrf: "tok"}
	var size int
	b.ReportAllocs()
	for b.Loop() {
		d := &traceData{MT: mt, Counts: Counts(mt.Status.Counts), Per: 1000, PerChoices: PerPageChoices, Page: Paginate(mt.Status.Rows, "", 1, 1000)}
		w := httptest.NewRecorder()
		p := s.newPage(rq, "title", "", d)
		d.Rows = rowViews(p, d)
		s.render(w, http.StatusOK, "trace", p)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
}
