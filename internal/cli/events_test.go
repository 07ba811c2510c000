package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

func openTestStore(t *testing.T) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mailtrace.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

const goodEvents = `{"time":"2026-03-14T09:00:00Z","messageTraceId":"m1","event":"Receive","sender":"a@example.com","subject":"hello","direction":"Outbound","fromIp":"10.0.1.5"}
{"time":"2026-03-14T09:00:02Z","messageTraceId":"m1","event":"Deliver","recipient":"b@partner.example","toIp":"198.51.100.25","dsn":"2.0.0","someFutureField":true}

{"time":"2026-03-14T09:01:00Z","messageTraceId":"m2","event":"Receive","sender":"c@partner.example","subject":"会議","direction":"Inbound"}
`

// Bad lines are reported with their numbers and skipped; every good event is stored.
func TestLoadEventsReportsBadLinesAndKeepsGoodOnes(t *testing.T) {
	st, _ := openTestStore(t)
	input := goodEvents +
		`{"time":"2026-03-14T09:02:00Z","messageTraceId":"m3","event":"Receive"` + "\n" + // 5: truncated JSON
		`{"time":"2026-03-14T09:02:00Z","event":"Receive"}` + "\n" + // 6: no messageTraceId
		`{"messageTraceId":"m4","event":"Receive"}` + "\n" + // 7: no time
		`{"time":"2026-03-14T09:02:00Z","messageTraceId":"m5","event":"Receive","fromIp":"not-an-ip"}` + "\n" + // 8
		`not json at all` + "\n" + // 9
		`{"time":"2026-03-14T09:03:00Z","messageTraceId":"m2","event":"Fail","recipient":"x@example.com","dsn":"5.1.1"}` // 10, no final newline
	var report bytes.Buffer
	res, err := LoadEvents(context.Background(), st, strings.NewReader(input), 2, &report)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loaded != 4 || res.Skipped != 5 {
		t.Fatalf("loaded %d skipped %d, want 4 and 5; report:\n%s", res.Loaded, res.Skipped, report.String())
	}
	for _, want := range []string{"line 5: not a JSON event", "line 6: event: messageTraceId is required",
		"line 7: event: time is required", "line 8: event: not-an-ip is not an IP address", "line 9: not a JSON event"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, report.String())
		}
	}
	if strings.Contains(report.String(), "line 4:") || strings.Contains(report.String(), "line 10:") {
		t.Errorf("good lines reported:\n%s", report.String())
	}
	q := mailflow.Query{Start: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)}
	c, err := st.Count(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 2 || c.ByStatus[mailflow.StatusDelivered] != 1 || c.ByStatus[mailflow.StatusFailed] != 1 {
		t.Fatalf("stored rows %+v, want m1 Delivered and m2 Failed", c)
	}
	evs, err := st.Events(context.Background(), "m1", "b@partner.example")
	if err != nil || len(evs) != 2 {
		t.Fatalf("events of m1: %v, %v", evs, err)
	}
}

func TestLoadEventsGzipAndIdempotent(t *testing.T) {
	st, _ := openTestStore(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprint(zw, goodEvents)
	zw.Close()
	for i := 0; i < 2; i++ {
		var report bytes.Buffer
		res, err := LoadEvents(context.Background(), st, bytes.NewReader(gz.Bytes()), 1000, &report)
		if err != nil || res.Loaded != 3 || res.Skipped != 0 {
			t.Fatalf("run %d: %+v %v %s", i, res, err, report.String())
		}
	}
	q := mailflow.Query{Start: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)}
	if c, err := st.Count(context.Background(), q); err != nil || c.Total != 2 {
		t.Fatalf("after loading twice: %+v %v, want 2 rows", c, err)
	}
}

func TestLoadEventsLongLine(t *testing.T) {
	st, _ := openTestStore(t)
	long := `{"time":"2026-03-14T09:00:00Z","messageTraceId":"m9","event":"Receive","subject":"` + strings.Repeat("x", maxLine) + `"}`
	input := long + "\n" + strings.SplitN(goodEvents, "\n", 2)[0] + "\n"
	var report bytes.Buffer
	res, err := LoadEvents(context.Background(), st, strings.NewReader(input), 10, &report)
	if err != nil || res.Loaded != 1 || res.Skipped != 1 || !strings.Contains(report.String(), "line 1: longer than") {
		t.Fatalf("%+v %v %q", res, err, report.String())
	}
}

// The command prints the summary and exits 1 when a line was bad.
func TestEventsLoadCommand(t *testing.T) {
	_, path := openTestStore(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"events", "load", "--store", "sqlite://" + path},
		strings.NewReader(goodEvents+"garbage\n"), &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "line 5: not a JSON event") || !strings.Contains(errOut.String(), "loaded 3 events, skipped 1 bad lines") {
		t.Fatalf("stderr:\n%s", errOut.String())
	}
	errOut.Reset()
	code = run(context.Background(), []string{"events", "load", "--store", "sqlite://" + path, "-"},
		strings.NewReader(goodEvents), &out, &errOut)
	if code != 0 || !strings.Contains(errOut.String(), "loaded 3 events, skipped 0 bad lines") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}

	// And query sees them, as CSV and as a table.
	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"query", "--store", "sqlite://" + path,
		"--start", "2026-03-14", "--end", "2026-03-15", "-o", "csv"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("query exit %d: %s", code, errOut.String())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 || lines[0] != strings.Join(SummaryCSVHeader, ",") {
		t.Fatalf("csv:\n%s", out.String())
	}
	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"query", "--store", "sqlite://" + path,
		"--start", "2026-03-14", "--end", "2026-03-15", "--status", "delivered"}, strings.NewReader(""), &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "b@partner.example") || strings.Contains(out.String(), "会議") ||
		!strings.Contains(errOut.String(), "1 of 1 matching rows shown") {
		t.Fatalf("exit %d table:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	out.Reset()
	code = run(context.Background(), []string{"details", "--store", "sqlite://" + path, "--trace-id", "m1"}, strings.NewReader(""), &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "Deliver") || !strings.Contains(out.String(), "Receive") {
		t.Fatalf("details exit %d:\n%s\n%s", code, out.String(), errOut.String())
	}
	// An address that is not one of the message's recipients is refused,
	// not answered with the message-level events as if they were its own.
	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"details", "--store", "sqlite://" + path, "--trace-id", "m1", "--recipient", "stranger@example.org"}, strings.NewReader(""), &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "stranger@example.org is not a recipient of message m1 (its recipients: ") || strings.Contains(out.String(), "Receive") {
		t.Fatalf("details of a stranger: exit %d:\n%s\n%s", code, out.String(), errOut.String())
	}
}
