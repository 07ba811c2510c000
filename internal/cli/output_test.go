package cli

import (
	"bytes"
	"encoding/csv"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/controllers/messagetrace"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/plugin"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/textable"
)

func TestNeutralizeCSVCell(t *testing.T) {
	tests := map[string]string{
		"":                  "",
		"plain":             "plain",
		"=SUM(A1:A9)":       "'=SUM(A1:A9)",
		"+1 555":            "'+1 555",
		"-2":                "'-2",
		"@cmd":              "'@cmd",
		"\tindent":          "'\tindent",
		"\rcr":              "'\rcr",
		"a=b":               "a=b",
		"会議":                "会議",
		" =not first":       " =not first",
		"'already quoted":   "'already quoted",
		"user@example.com":  "user@example.com",
		"<id@example.com>":  "<id@example.com>",
		"2001:db8::1":       "2001:db8::1",
		"-@both":            "'-@both",
		"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")",
	}
	for in, want := range tests {
		if got := NeutralizeCSVCell(in); got != want {
			t.Errorf("NeutralizeCSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSummaryCSVWriter(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewSummaryCSVWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rows := []mailflow.Row{
		{
			Received: time.Date(2026, 3, 14, 9, 26, 53, 500_000_000, time.FixedZone("JST", 9*3600)),
			Sender:   "alice@example.com", Recipient: "ken.tanaka@partner.example",
			Subject: `Quote "Q3", final` + "\nsecond line", Status: mailflow.StatusDelivered, Size: 12345,
			MessageID: "<abc@example.com>", MessageTraceID: "4Xk2Lb3d9Zz1", OriginalClientIP: "10.0.1.15",
			FromIP: "10.0.1.15", ToIP: "198.51.100.25", Direction: mailflow.DirectionOutbound, Folder: "=Junk",
		},
		{Sender: "=cmd|' /C calc'!A0@evil.example", Subject: "-10% off", Status: mailflow.StatusGettingStatus, MessageTraceID: "x"},
		{Subject: "【ご案内】来週の定例会議について", Status: mailflow.StatusFailed, MessageTraceID: "y"},
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `origin_timestamp_utc,sender_address,recipient_address,message_subject,delivery_status,total_bytes,message_id,network_message_id,original_client_ip,from_ip,to_ip,directionality,mailbox_folder
2026-03-14T00:26:53.5Z,alice@example.com,ken.tanaka@partner.example,"Quote ""Q3"", final
second line",Delivered,12345,<abc@example.com>,4Xk2Lb3d9Zz1,10.0.1.15,10.0.1.15,198.51.100.25,Outbound,'=Junk
,'=cmd|' /C calc'!A0@evil.example,,'-10% off,GettingStatus,0,,x,,,,,
,,,【ご案内】来週の定例会議について,Failed,0,,y,,,,,
`
	if got := buf.String(); got != want {
		t.Fatalf("CSV:\n%s\nwant:\n%s", got, want)
	}
	// It reads back with a standard RFC 4180 reader: 13 columns on every record.
	recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || len(recs[0]) != 13 || recs[1][3] != "Quote \"Q3\", final\nsecond line" {
		t.Fatalf("read back %q", recs)
	}
}

// failEvent is a bounce as the ingester stores it: its detail quotes
// Postfix's status text, relay and response included.
func failEvent() mailflow.Event {
	return mailflow.Event{Time: time.Date(2026, 11, 25, 1, 10, 10, 0, time.UTC), Type: mailflow.EventFail, Recipient: "orders-old@partner.example",
		Source: "smtp", DSN: "5.1.1", Relay: "mx.partner.example[198.51.100.25]:25",
		SMTPResponse: "host mx.partner.example[198.51.100.25] said: 550 5.1.1 <orders-old@partner.example>: User unknown (in reply to RCPT TO command)",
		Detail:       "status=bounced via mx.partner.example[198.51.100.25]:25: host mx.partner.example[198.51.100.25] said: 550 5.1.1 <orders-old@partner.example>: User unknown (in reply to RCPT TO command)"}
}

// TestTimelineSaysTheResponseOnce: a Fail row whose detail quotes the
// server's response (and the relay) prints each once, in mailtrace details,
// kubectl mailtrace details and the demo alike; a detail that does not
// quote them gets them appended.
func TestTimelineSaysTheResponseOnce(t *testing.T) {
	e := failEvent()
	bare := e
	bare.Detail = "bounced: the recipient's server says the mailbox does not exist"
	toStatus := func(e mailflow.Event) v1alpha1.MessageEvent {
		return v1alpha1.MessageEvent{Time: metav1.NewTime(e.Time), Event: string(e.Type), Source: e.Source, DSN: e.DSN, Relay: e.Relay, SMTPResponse: e.SMTPResponse, Detail: e.Detail}
	}
	var cliOut, pluginOut, demoOut bytes.Buffer
	if err := printTimeline(&cliOut, []mailflow.Event{e, bare}, time.UTC); err != nil {
		t.Fatal(err)
	}
	d := &v1alpha1.MessageDetailsStatus{Recipient: e.Recipient, Events: []v1alpha1.MessageEvent{toStatus(e), toStatus(bare)}}
	if err := plugin.PrintDetailsTimeline(&pluginOut, io.Discard, d); err != nil {
		t.Fatal(err)
	}
	if err := plugin.PrintDetailsTimeline(&demoOut, io.Discard, d); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"mailtrace details": cliOut.String(), "kubectl mailtrace details": pluginOut.String(), "demo": demoOut.String()} {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Errorf("%s printed\n%s", name, out)
			continue
		}
		if n := strings.Count(lines[1], "550 5.1.1"); n != 1 {
			t.Errorf("%s: the response %d times in\n%s", name, n, lines[1])
		}
		if n := strings.Count(lines[1], "mx.partner.example[198.51.100.25]:25"); n != 1 {
			t.Errorf("%s: the relay %d times in\n%s", name, n, lines[1])
		}
		if !strings.Contains(lines[2], "mailbox does not exist; relay=mx.partner.example[198.51.100.25]:25; response: host mx.partner.example") {
			t.Errorf("%s: a detail without the response lacks it:\n%s", name, lines[2])
		}
	}
}

// TestWideTableSizesLikeTheTable: -o wide shows sizes as the table does
// (176.0K), not in raw bytes.
func TestWideTableSizesLikeTheTable(t *testing.T) {
	r := mailflow.Row{Received: time.Date(2026, 11, 25, 1, 10, 8, 0, time.UTC), Sender: "bob@example.com", Recipient: "x@partner.example",
		Subject: "s", Status: mailflow.StatusFailed, Size: 180224, MessageTraceID: "6ac2279ac0af5eb73a36", MessageID: "<a@b>"}
	for _, wide := range []bool{false, true} {
		var buf bytes.Buffer
		tw := &rowTable{w: &buf, wide: wide}
		if err := tw.Write(r); err != nil {
			t.Fatal(err)
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), " 176.0K ") || strings.Contains(buf.String(), "180224") {
			t.Errorf("wide=%v:\n%s", wide, buf.String())
		}
	}
	var buf bytes.Buffer
	plugin.PrintRows(&buf, []v1alpha1.TraceRow{{Received: metav1.NewTime(r.Received), Sender: r.Sender, Status: "Failed", Size: r.Size, MessageTraceID: r.MessageTraceID}}, true)
	if !strings.Contains(buf.String(), " 176.0K ") {
		t.Errorf("kubectl mailtrace -o wide:\n%s", buf.String())
	}
}

// The mailbox folder of a row: a FOLDER column of -o wide (both CLIs; "-"
// when none is known) and the last column of -o csv, which has a Summary
// report's columns.
func TestFolderInWideAndCSV(t *testing.T) {
	if !slices.Equal(SummaryCSVHeader, report.SummaryColumns) {
		t.Errorf("-o csv header %q, a Summary report's %q", SummaryCSVHeader, report.SummaryColumns)
	}
	r := mailflow.Row{Received: time.Date(2026, 11, 25, 1, 10, 8, 0, time.UTC), Sender: "promo@partner.example", Recipient: "bob@example.com",
		Subject: "You have won", Status: mailflow.StatusDelivered, MessageTraceID: "6ac2279ac0af5eb73a36", Folder: "Junk"}
	noFolder := r
	noFolder.Recipient, noFolder.Folder = "carol@example.com", ""
	var buf bytes.Buffer
	tw := &rowTable{w: &buf, wide: true}
	for _, row := range []mailflow.Row{r, noFolder} {
		if err := tw.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	checkFolderColumn(t, "mailtrace query -o wide", buf.String(), textable.HeadQueryWide)

	buf.Reset()
	plugin.PrintRows(&buf, []v1alpha1.TraceRow{messagetrace.ToRow(r), messagetrace.ToRow(noFolder)}, true)
	checkFolderColumn(t, "kubectl mailtrace -o wide", buf.String(), textable.HeadPluginWide)

	buf.Reset()
	cw, err := NewSummaryCSVWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Write(r); err != nil {
		t.Fatal(err)
	}
	if err := cw.Flush(); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(buf.String()), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[1], ",Junk") {
		t.Errorf("-o csv:\n%s", buf.String())
	}
}

// checkFolderColumn: the FOLDER column of a wide table holds Junk for the
// first row and "-" for the second.
func checkFolderColumn(t *testing.T, name, out string, head []string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%s printed\n%s", name, out)
	}
	col := strings.Index(lines[0], "FOLDER")
	if col < 0 || slices.Index(head, "FOLDER") < 0 {
		t.Fatalf("%s: no FOLDER column in\n%s", name, out)
	}
	for i, want := range []string{"Junk", "-"} {
		if got := strings.Fields(lines[i+1][col:])[0]; got != want {
			t.Errorf("%s: row %d's folder %q, want %q:\n%s", name, i+1, got, want, out)
		}
	}
}
