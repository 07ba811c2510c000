package server

import (
	"fmt"
	"strings"
	"testing"
)

func decodeString(kind, body string, max int) decoded {
	d := decoded{max: max}
	if kind == "json" {
		decodeJSON([]byte(body), &d)
	} else {
		decodeText([]byte(body), &d)
	}
	return d
}

func texts(d decoded) []string {
	var out []string
	for _, m := range d.msgs {
		out = append(out, m.Text())
	}
	return out
}

const (
	recA = "Mar  1 10:00:00 mx postfix/qmgr[2]: AAAAA12345: removed"
	recB = "Mar  1 10:00:01 mx postfix/qmgr[2]: BBBBB12345: removed"
)

// JSON bodies are read one record at a time: one record, an array, NDJSON,
// arrays one after another; a line that is not JSON is skipped and
// counted, the lines after it kept; an array broken in the middle stops
// the reading, the records before it kept; too many records stop it too.
func TestDecodeJSON(t *testing.T) {
	a, b := fmt.Sprintf(`{"log":%q}`, recA), fmt.Sprintf(`{"message":%q}`, recB)
	cases := []struct {
		name, body string
		want       []string
		dropped    map[string]int
		bad        string // in d.bad
		tooMany    bool
	}{
		{"one record", a, []string{recA}, nil, "", false},
		{"array", "[" + a + ", " + b + "]", []string{recA, recB}, nil, "", false},
		{"ndjson", a + "\n" + b + "\n", []string{recA, recB}, nil, "", false},
		{"values on one line", a + b, []string{recA, recB}, nil, "", false},
		{"arrays one after another", "[" + a + "]\n[" + b + "]", []string{recA, recB}, nil, "", false},
		{"a bad line in the middle", a + "\n{\"log\": tru\n" + b + "\n", []string{recA, recB}, map[string]int{ReasonBadJSON: 1}, "", false},
		{"garbage after a record on its line", a + " garbage\n" + b, []string{recA, recB}, map[string]int{ReasonBadJSON: 1}, "", false},
		{"a cut last line", a + "\n" + `{"log":"x`, []string{recA}, map[string]int{ReasonBadJSON: 1}, "", false},
		{"a broken array", "[" + a + ", {\"log\": tru}, " + b + "]", []string{recA}, map[string]int{ReasonBadJSON: 1}, "invalid character", false},
		{"an unended array", "[" + a + ", ", []string{recA}, map[string]int{ReasonBadJSON: 1}, "EOF", false},
		{"not records", `[1, null, true, {"other":"x"}, [], "` + recB + `"]`, []string{recB}, map[string]int{ReasonEmptyRecord: 5}, "", false},
		{"deep", "[" + strings.Repeat("[", 65) + strings.Repeat("]", 65) + "]", nil, map[string]int{ReasonTooDeep: 1}, "nested deeper than 64", false},
		{"deeper than the scanner", strings.Repeat("[", 20000), nil, map[string]int{ReasonTooDeep: 1}, "nested deeper than 64", false},
		{"deep line of NDJSON", a + "\n" + strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70) + "\n" + b, []string{recA}, map[string]int{ReasonTooDeep: 1}, "nested deeper", false},
		{"too many", "[" + a + "," + a + "," + a + "]", nil, nil, "", true},
		{"fields", `{"message":"removed","hostname":"mx","appname":"postfix/qmgr","procid":2,"date":1709287200.5}`, []string{"2024-03-01T10:00:00.5Z mx postfix/qmgr[2]: removed"}, nil, "", false},
		{"escapes and bad UTF-8", `{"log":"Mar  1 10:00:00 mx postfix/qmgr[2]: A\u00e9\" x` + "\xff" + `"}`, []string{"Mar  1 10:00:00 mx postfix/qmgr[2]: Aé\" x\ufffd"}, nil, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			max := 100
			if c.tooMany {
				max = 2
			}
			d := decodeString("json", c.body, max)
			if d.tooMany != c.tooMany {
				t.Fatalf("tooMany %v", d.tooMany)
			}
			if c.tooMany {
				return
			}
			if got := texts(d); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("messages\n got %q\nwant %q", got, c.want)
			}
			if fmt.Sprint(d.dropped) != fmt.Sprint(c.dropped) && len(d.dropped)+len(c.dropped) > 0 {
				t.Errorf("dropped %v, want %v", d.dropped, c.dropped)
			}
			if (d.bad == nil) != (c.bad == "") || d.bad != nil && !strings.Contains(d.bad.Error(), c.bad) {
				t.Errorf("bad %v, want %q", d.bad, c.bad)
			}
		})
	}
}

// hostileBodies seed the fuzz targets: the request bodies of issue 15.
var hostileBodies = []string{
	"[{},{},{},{}]",
	strings.Repeat("[", 100),
	strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70),
	"{\"log\":\"" + recA + "\"}\n{\"log\": tru\n{\"log\":\"" + recB + "\"}\n",
	"[{\"log\":\"" + recA + "\"}, {\"log\": tru}]",
	`[1, null, {"other":"x"}, "\u0000\u0001\u00ff"]`,
	`{"message":"m","hostname":"h","appname":"a","date":1e400}`,
	`{"message":"m","hostname":"h","appname":"a","timestamp":"2024-03-01T10:00:00Z","pid":-1}`,
	"\"<22>1 2024-03-01T10:00:00Z mx postfix/qmgr - - - A: removed\"",
	"][", "", "   \n\n", "\"\\ud800\"",
}

// checkDecoded: never more records than the maximum, every record either
// kept, dropped or where the reading stopped.
func checkDecoded(t *testing.T, d decoded, max int) {
	if d.records > max+1 || len(d.msgs) > max {
		t.Fatalf("%d records read, %d kept, max %d", d.records, len(d.msgs), max)
	}
	dropped := 0
	for _, n := range d.dropped {
		dropped += n
	}
	if !d.tooMany && len(d.msgs)+dropped > d.records+1 {
		t.Fatalf("%d kept + %d dropped of %d records", len(d.msgs), dropped, d.records)
	}
	for _, m := range d.msgs {
		_ = m.Text()
	}
}

// FuzzJSONArray: any JSON body (an array, a record, values one after
// another) is read without a crash, within the record cap.
func FuzzJSONArray(f *testing.F) {
	for _, s := range hostileBodies {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		checkDecoded(t, decodeString("json", body, 50), 50)
	})
}

// FuzzNDJSON: whatever a line holds, the good records on the lines around
// it are kept (unless it nests too deep, which stops the request).
func FuzzNDJSON(f *testing.F) {
	for _, s := range hostileBodies {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		line = strings.ReplaceAll(line, "\n", " ")
		body := fmt.Sprintf("{\"log\":%q}\n%s\n{\"log\":%q}\n", recA, line, recB)
		d := decodeString("json", body, 1000)
		checkDecoded(t, d, 1000)
		got := texts(d)
		if len(got) == 0 || got[0] != recA {
			t.Fatalf("the record before %q was lost: %q", line, got)
		}
		if d.bad == nil && got[len(got)-1] != recB {
			t.Fatalf("the record after %q was lost: %q (dropped %v)", line, got, d.dropped)
		}
	})
}

// FuzzTextLines: a body of raw lines gives one message per non-empty line,
// within the record cap.
func FuzzTextLines(f *testing.F) {
	for _, s := range append(hostileBodies, recA+"\r\n"+recB, "4096 bytes of junk\n65000 y\n99999999 z\n", "\r\n\r\n\x00") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		d := decodeString("text", body, 20)
		checkDecoded(t, d, 20)
		want := 0
		for _, l := range strings.Split(body, "\n") {
			if strings.TrimRight(l, "\r") != "" {
				want++
			}
		}
		if !d.tooMany && len(d.msgs) != want {
			t.Fatalf("%d messages of %d lines", len(d.msgs), want)
		}
	})
}
