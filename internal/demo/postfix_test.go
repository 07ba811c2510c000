package demo

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

func TestGenerateLogIsDeterministic(t *testing.T) {
	a, b := GenerateLog(testNow), GenerateLog(testNow)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("GenerateLog(now) gave different lines on two calls")
	}
	if len(a) < 5000 {
		t.Fatalf("only %d lines; the demo wants 90 days of a realistic volume", len(a))
	}
}

// The generated log, through the real correlator into a real SQLite store,
// gives every delivery status and direction the demo shows, over 90 days,
// with nothing skipped as unknown.
func TestGenerateLogThroughTheIngester(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demo.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lines := GenerateLog(testNow)
	stats, err := ingest.IngestReader(ctx, strings.NewReader(strings.Join(lines, "\n")+"\n"),
		ingest.Config{AcceptedDomains: AcceptedDomains, Reference: testNow},
		func(evs []mailflow.Event) error { return st.Append(ctx, evs) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", stats)
	q := mailflow.Query{Start: testNow.Add(-LogDays * 24 * time.Hour), End: testNow}
	c, err := st.Count(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows: %v", c.Total, c.ByStatus)
	for _, s := range []mailflow.Status{mailflow.StatusDelivered, mailflow.StatusPending, mailflow.StatusExpanded, mailflow.StatusFailed,
		mailflow.StatusQuarantined, mailflow.StatusFilteredAsSpam} {
		if c.ByStatus[s] == 0 {
			t.Errorf("no %s rows", s)
		}
	}
	for _, d := range []mailflow.Direction{mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal} {
		q := q
		q.Direction = d
		if c, err := st.Count(ctx, q); err != nil || c.Total == 0 {
			t.Errorf("no %s rows (%v)", d, err)
		}
	}
	old := q
	old.End = testNow.Add(-80 * 24 * time.Hour)
	if c, err := st.Count(ctx, old); err != nil || c.Total == 0 {
		t.Errorf("nothing older than 80 days (%v)", err)
	}
	// every default query finds something (pending: to the organisation's users in the last 2 days)
	pend := mailflow.Query{Start: testNow.Add(-48 * time.Hour), End: testNow, Recipients: []string{"*@" + OrgDomain},
		Statuses: []mailflow.Status{mailflow.StatusPending}}
	if c, err := st.Count(ctx, pend); err != nil || c.Total == 0 {
		t.Errorf("nothing pending to *@%s in the last 2 days (%v)", OrgDomain, err)
	}
	q.Subject = "来週の定例会議"
	if c, err := st.Count(ctx, q); err != nil || c.Total == 0 {
		t.Errorf("no Japanese subject (%v)", err)
	}
	q.Subject = ""
	q.Statuses = []mailflow.Status{mailflow.StatusFailed}
	p, err := st.Trace(ctx, q, "", 1)
	if err != nil || len(p.Rows) == 0 {
		t.Fatalf("no failed row (%v)", err)
	}
	evs, err := st.Events(ctx, p.Rows[0].MessageTraceID, p.Rows[0].Recipient)
	if err != nil {
		t.Fatal(err)
	}
	var dsn bool
	for _, e := range evs {
		dsn = dsn || e.DSN == "5.1.1"
	}
	if !dsn {
		t.Errorf("the newest failed row has no 5.1.1 event: %+v", evs)
	}
}
