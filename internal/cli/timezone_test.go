package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

// TestTimeZoneAndEventFilter: --time-zone reads a plain date at midnight in
// that zone and prints the tables' times there, naming it in the header;
// -o json stays in UTC; details --event keeps only those events.
func TestTimeZoneAndEventFilter(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "trace.db")
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	// Received 2026-12-01 16:30 UTC: 2026-12-02 01:30 in Tokyo.
	at := time.Date(2026, 12, 1, 16, 30, 0, 0, time.UTC)
	evs := []mailflow.Event{
		{ID: "r", Time: at, MessageTraceID: "m1", Type: mailflow.EventReceive, Sender: "a@example.com", Received: at, Source: "smtpd"},
		{ID: "d1", Time: at.Add(time.Minute), MessageTraceID: "m1", Recipient: "b@example.org", Type: mailflow.EventDefer, Detail: "451 later"},
		{ID: "d2", Time: at.Add(time.Hour), MessageTraceID: "m1", Recipient: "b@example.org", Type: mailflow.EventDeliver, Detail: "delivered"},
	}
	if err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	st.Close()
	cli := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append(args, "--store", "sqlite://"+db), strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		return out.String(), errOut.String()
	}
	// In Tokyo the message is of 2 December: a trace of that day finds it,
	// one of 1 December does not.
	out, errOut := cli("query", "--start", "2026-12-02", "--end", "2026-12-03", "--time-zone", "Asia/Tokyo")
	if !strings.HasPrefix(out, "RECEIVED (Asia/Tokyo)") || !strings.Contains(out, "2026-12-02 01:30:00") || !strings.Contains(errOut, "2026-12-02T00:00:00+09:00") {
		t.Errorf("query in Tokyo:\n%s%s", out, errOut)
	}
	if out, errOut = cli("query", "--start", "2026-12-01", "--end", "2026-12-02", "--time-zone", "Asia/Tokyo"); out != "" || !strings.Contains(errOut, "No messages match") {
		t.Errorf("1 December in Tokyo:\n%s%s", out, errOut)
	}
	out, _ = cli("query", "--start", "2026-12-02", "--end", "2026-12-03", "--time-zone", "Asia/Tokyo", "-o", "json")
	if !strings.Contains(out, `"received":"2026-12-01T16:30:00Z"`) {
		t.Errorf("-o json is not in UTC: %s", out)
	}
	out, _ = cli("details", "--trace-id", "m1", "--event", "defer,Deliver", "--time-zone", "Asia/Tokyo")
	if !strings.Contains(out, "TIME (Asia/Tokyo)") || strings.Contains(out, "Receive") || !strings.Contains(out, "2026-12-02 01:31:00   Defer") ||
		!strings.Contains(out, "Deliver") {
		t.Errorf("details --event defer,Deliver in Tokyo:\n%s", out)
	}
}
