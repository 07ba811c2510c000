package textable

import (
	"bytes"
	"strings"
	"testing"
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
