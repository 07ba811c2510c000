package textable

import (
	"bytes"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"
)

func TestTableAlignsWideCharacters(t *testing.T) {
	var tb Table
	tb.Add("SUBJECT", "STATUS")
	tb.Add("会議", "Failed")
	tb.Add("meeting\x1b[31m", "Delivered")
	var buf bytes.Buffer
	if err := tb.Print(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	for _, l := range lines {
		if strings.ContainsRune(l, 0x1b) {
			t.Errorf("control character printed: %q", l)
		}
	}
	pos := []int{
		DisplayWidth(lines[0][:strings.Index(lines[0], "STATUS")]),
		DisplayWidth(lines[1][:strings.Index(lines[1], "Failed")]),
		DisplayWidth(lines[2][:strings.Index(lines[2], "Delivered")]),
	}
	if pos[0] != pos[1] || pos[1] != pos[2] {
		t.Errorf("STATUS column starts at display columns %v:\n%s", pos, buf.String())
	}
	if got := Truncate("【ご案内】来週の定例会議について", 10); DisplayWidth(got) > 10 || !strings.HasSuffix(got, "…") {
		t.Errorf("truncate = %q (width %d)", got, DisplayWidth(got))
	}
}

func TestTimesInAZone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 23, 30, 0, 0, time.UTC)
	if got := FormatTime(at, tokyo); got != "2026-12-02 08:30:00" {
		t.Errorf("FormatTime in Tokyo = %q", got)
	}
	if got := FormatTime(at, nil); got != "2026-12-01 23:30:00" {
		t.Errorf("FormatTime without a zone = %q", got)
	}
	if got := InZone(HeadPluginRows, tokyo); got[0] != "RECEIVED (Asia/Tokyo)" || HeadPluginRows[0] != "RECEIVED (UTC)" {
		t.Errorf("InZone: %q (and the original %q)", got[0], HeadPluginRows[0])
	}
	if got := InZone(HeadTimeline, time.UTC); got[0] != "TIME (UTC)" {
		t.Errorf("InZone UTC: %q", got[0])
	}
	if ZoneName(time.Local) == "Local" || ZoneName(time.Local) == "" {
		t.Errorf("the local zone is named %q, not by its abbreviation", ZoneName(time.Local))
	}
}
