package cli

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/store"
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
	rows := []store.Row{
		{
			Received: time.Date(2026, 3, 14, 9, 26, 53, 500_000_000, time.FixedZone("JST", 9*3600)),
			Sender:   "alice@example.com", Recipient: "ken.tanaka@partner.example",
			Subject: `Quote "Q3", final` + "\nsecond line", Status: store.StatusDelivered, Size: 12345,
			MessageID: "<abc@example.com>", MessageTraceID: "4Xk2Lb3d9Zz1", OriginalClientIP: "10.0.1.15",
			FromIP: "10.0.1.15", ToIP: "198.51.100.25", Direction: store.DirectionOutbound,
		},
		{Sender: "=cmd|' /C calc'!A0@evil.example", Subject: "-10% off", Status: store.StatusGettingStatus, MessageTraceID: "x"},
		{Subject: "【ご案内】来週の定例会議について", Status: store.StatusFailed, MessageTraceID: "y"},
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `origin_timestamp_utc,sender_address,recipient_address,message_subject,delivery_status,total_bytes,message_id,network_message_id,original_client_ip,from_ip,to_ip,directionality
2026-03-14T00:26:53.5Z,alice@example.com,ken.tanaka@partner.example,"Quote ""Q3"", final
second line",Delivered,12345,<abc@example.com>,4Xk2Lb3d9Zz1,10.0.1.15,10.0.1.15,198.51.100.25,Outbound
,'=cmd|' /C calc'!A0@evil.example,,'-10% off,GettingStatus,0,,x,,,,
,,,【ご案内】来週の定例会議について,Failed,0,,y,,,,
`
	if got := buf.String(); got != want {
		t.Fatalf("CSV:\n%s\nwant:\n%s", got, want)
	}
	// It reads back with a standard RFC 4180 reader: 12 columns on every record.
	recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || len(recs[0]) != 12 || recs[1][3] != "Quote \"Q3\", final\nsecond line" {
		t.Fatalf("read back %q", recs)
	}
}

func TestTableAlignsWideCharacters(t *testing.T) {
	var tb table
	tb.add("SUBJECT", "STATUS")
	tb.add("会議", "Failed")
	tb.add("meeting\x1b[31m", "Delivered")
	var buf bytes.Buffer
	if err := tb.print(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	for _, l := range lines {
		if strings.ContainsRune(l, 0x1b) {
			t.Errorf("control character printed: %q", l)
		}
	}
	pos := []int{
		displayWidth(lines[0][:strings.Index(lines[0], "STATUS")]),
		displayWidth(lines[1][:strings.Index(lines[1], "Failed")]),
		displayWidth(lines[2][:strings.Index(lines[2], "Delivered")]),
	}
	if pos[0] != pos[1] || pos[1] != pos[2] {
		t.Errorf("STATUS column starts at display columns %v:\n%s", pos, buf.String())
	}
	if got := truncate("【ご案内】来週の定例会議について", 10); displayWidth(got) > 10 || !strings.HasSuffix(got, "…") {
		t.Errorf("truncate = %q (width %d)", got, displayWidth(got))
	}
}
