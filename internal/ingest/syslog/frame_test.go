package syslog

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

type frameOut struct {
	frame string
	drop  Drop
}

// oc frames s by octet counting.
func oc(s string) string { return strconv.Itoa(len(s)) + " " + s }

func decodeAll(t testing.TB, r io.Reader, max int) ([]frameOut, error) {
	d := NewDecoder(r, max)
	var out []frameOut
	for i := 0; ; i++ {
		if i > 1<<20 {
			t.Fatal("decoder does not end")
		}
		f, drop, err := d.Next()
		if f != nil || drop != "" {
			out = append(out, frameOut{string(f), drop})
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
	}
}

// The decoder reads both RFC 6587 framings, the one a stream's first frame
// uses, drops oversized, cut and (on an octet-counted stream) bogus frames
// with a reason, and never buffers a long frame.
func TestDecoder(t *testing.T) {
	line := "Mar  1 12:00:00 mx postfix/smtpd[1]: connect from x[1.2.3.4]"
	n := strconv.Itoa(len(line))
	cases := []struct {
		name string
		in   string
		max  int
		want []frameOut
	}{
		{"newline", line + "\n" + line + "\r\n", 0, []frameOut{{line, ""}, {line, ""}}},
		{"octet counted", n + " " + line + n + " " + line, 0, []frameOut{{line, ""}, {line, ""}}},
		{"octet counted with trailing LF", strconv.Itoa(len(line)+1) + " " + line + "\n", 0, []frameOut{{line, ""}}},
		// the first frame fixes the framing: a line on an octet-counted
		// stream is dropped to its LF, and the counting goes on after it
		{"octet counted, then a line", n + " " + line + line + "\n" + n + " " + line, 0, []frameOut{{line, ""}, {"", DropBadFrame}, {line, ""}}},
		{"lines, then a count", line + "\n" + n + " " + line + "\n", 0, []frameOut{{line, ""}, {n + " " + line, ""}}},
		{"octet counted RFC 5424", oc("<22>1 2023-03-14T00:00:31Z mx postfix/qmgr - - - A: removed"), 0, []frameOut{{"<22>1 2023-03-14T00:00:31Z mx postfix/qmgr - - - A: removed", ""}}},
		{"octet counted RFC 3339 without PRI", oc("2023-03-14T00:00:31Z mx p: m\n"), 0, []frameOut{{"2023-03-14T00:00:31Z mx p: m", ""}}},
		// digits and a space without a syslog header are a line, whatever
		// the count says (each of these once swallowed what came after)
		{"digits and junk", "4096 bytes of junk\n" + line + "\n", 0, []frameOut{{"4096 bytes of junk", ""}, {line, ""}}},
		{"65000 y", "65000 y\n" + line + "\n", 0, []frameOut{{"65000 y", ""}, {line, ""}}},
		{"99999999 z", "99999999 z\n" + line + "\n", 0, []frameOut{{"99999999 z", ""}, {line, ""}}},
		{"count and a PRI cut by LF", "40 <1\n" + line + "\n", 0, []frameOut{{"40 <1", ""}, {line, ""}}},
		{"count shorter than its header", "2 <13>Mar  1 x\n", 0, []frameOut{{"2 <13>Mar  1 x", ""}}},
		{"short line", "5 a\n", 0, []frameOut{{"5 a", ""}}},
		{"bad count on a counted stream", n + " " + line + "99999999 z\n" + n + " " + line, 0, []frameOut{{line, ""}, {"", DropBadFrame}, {line, ""}}},
		{"separators between frames", "\n\r\x00\n" + line + "\n\n", 0, []frameOut{{line, ""}}},
		{"ISO timestamp is not a count", "2023-03-14T00:00:31+01:00 h p: m\n", 0, []frameOut{{"2023-03-14T00:00:31+01:00 h p: m", ""}}},
		{"half line at EOF", line + "\n" + "Mar  1 12:00:01 mx post", 0, []frameOut{{line, ""}, {"", DropHalfFrame}}},
		{"octet count cut short", "100 <13>abc", 0, []frameOut{{"", DropHalfFrame}}},
		{"octet count too long", "200 <13>" + strings.Repeat("x", 196) + n + " " + line, 100, []frameOut{{"", DropTooLong}, {line, ""}}},
		{"octet count too long and cut", "2000 <13>" + strings.Repeat("x", 20), 100, []frameOut{{"", DropHalfFrame}}},
		{"line too long", strings.Repeat("y", 300) + "\n" + line + "\n", 100, []frameOut{{"", DropTooLong}, {line, ""}}},
		{"newline inside a counted frame", oc("<1>a\nb"), 0, []frameOut{{"<1>a b", ""}}},
		{"digits without space", "12345678901234 x\n", 0, []frameOut{{"12345678901234 x", ""}}},
		{"empty", "", 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(c.in), iotest.OneByteReader(strings.NewReader(c.in))} {
				got, err := decodeAll(t, r, c.max)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(c.want) {
					t.Fatalf("got %q, want %q", got, c.want)
				}
				for i := range got {
					if got[i] != c.want[i] {
						t.Errorf("frame %d: got %q, want %q", i, got[i], c.want[i])
					}
				}
			}
		})
	}
}

// A 1 MiB line costs no more memory than the maximum frame.
func TestDecoderMiBLine(t *testing.T) {
	in := strings.Repeat("z", 1<<20) + "\nok\n"
	got, err := decodeAll(t, strings.NewReader(in), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].drop != DropTooLong || got[1].frame != "ok" {
		t.Fatalf("got %d frames: %.80q", len(got), got)
	}
}

// A dropped frame is reported with its size and its first bytes.
func TestDecoderDroppedBytes(t *testing.T) {
	line := "<13>Mar  1 12:00:00 mx postfix/qmgr[2]: A: removed"
	cases := []struct {
		in     string
		drop   Drop
		bytes  int64
		sample string
	}{
		{strings.Repeat("y", 300) + "\n" + line + "\n", DropTooLong, 301, strings.Repeat("y", 64)},
		{oc(line) + "garbage here\n" + oc(line), DropBadFrame, 13, "garbage here\n"},
		{"300 <13>" + strings.Repeat("w", 296) + oc(line), DropTooLong, 300, "<13>" + strings.Repeat("w", 60)},
	}
	for _, c := range cases {
		d := NewDecoder(strings.NewReader(c.in), 100)
		var got []string
		for {
			f, drop, err := d.Next()
			if drop != "" {
				if drop != c.drop || d.DroppedBytes() != c.bytes || string(d.DroppedSample()) != c.sample {
					t.Errorf("%.20q: dropped %q %d bytes %q, want %q %d %q", c.in, drop, d.DroppedBytes(), d.DroppedSample(), c.drop, c.bytes, c.sample)
				}
			} else if f != nil {
				got = append(got, string(f))
			}
			if err != nil {
				break
			}
		}
		if len(got) == 0 || strings.Count(strings.Join(got, "\n")+"\n", line+"\n") != len(got) {
			t.Errorf("%.20q: frames %q, want the good ones", c.in, got)
		}
	}
}

// A short line is returned as soon as its LF arrives: deciding whether it
// starts an octet-counted frame never waits for bytes after it.
func TestDecoderShortLineNotHeld(t *testing.T) {
	for _, first := range []string{"5 a\n", "ok\n", "12 <1\n", "7 Mar\n"} {
		pr, pw := io.Pipe()
		d := NewDecoder(pr, 0)
		got := make(chan string, 1)
		go func() {
			f, _, _ := d.Next()
			got <- string(f)
		}()
		if _, err := pw.Write([]byte(first)); err != nil {
			t.Fatal(err)
		}
		if f := <-got; f != strings.TrimSuffix(first, "\n") {
			t.Errorf("%q: got %q", first, f)
		}
		pw.Close()
	}
}

// hostileStreams are the framings that once lost lines: seeds of the fuzz
// targets.
var hostileStreams = []string{
	"4096 bytes of junk\n<13>Mar  1 12:00:00 mx postfix/qmgr[2]: A: removed\n",
	"65000 y\nMar  1 12:00:00 mx postfix/qmgr[2]: A: removed\n",
	"99999999 z\nMar  1 12:00:00 mx postfix/qmgr[2]: A: removed\n",
	"99999999 <13>z\n50 <13>Mar  1 12:00:00 mx postfix/qmgr[2]: A: removed",
	"12 <13>abcdefgh12 <13>abcdefgh\ngarbage\n3 <1>",
}

// FuzzDecoder: any byte stream ends, every frame respects the maximum, and
// reading one byte at a time gives the same frames as reading at once.
func FuzzDecoder(f *testing.F) {
	for _, s := range append([]string{
		"62 Mar  1 12:00:00 mx postfix/smtpd[1]: connect from x[1.2.3.4]",
		"<22>1 2023-03-14T00:00:31Z mx postfix/qmgr - - - ABC: removed\n",
		"5 abc", "0 x\n", "999999999 ", "\n\n\r\x00", "12 ab\ncd\nef\nx\n", "\xff\xfe 3 \x00\x01",
	}, hostileStreams...) {
		f.Add([]byte(s), 16)
	}
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 1 || max > 1<<16 {
			max = 64
		}
		a, err := decodeAll(t, strings.NewReader(string(in)), max)
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeAll(t, iotest.OneByteReader(strings.NewReader(string(in))), max)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != len(b) {
			t.Fatalf("%d frames at once, %d byte by byte", len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("frame %d: %q vs %q", i, a[i], b[i])
			}
			if len(a[i].frame) > max {
				t.Fatalf("frame %d longer than %d", i, max)
			}
		}
		for _, fr := range a {
			_ = ParseFrame(fr.frame).Text()
		}
	})
}

// FuzzParseFrame: ParseFrame never fails, never reads past its input, and
// what it reads is the frame's text (a Line) or fields whose text is no
// longer than the frame.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		"<22>Mar  1 12:00:00 mx postfix/smtpd[1]: hi",
		"<22>1 2023-03-14T00:00:31.185Z mx postfix/smtp 4242 - - 4PbC4x469Jz3tBr: to=<a@b>",
		"<22>1 2023-03-14T00:00:31Z mx postfix/qmgr - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App]lication\"][x@1 a=\"b\\\"]\"] \uFEFFABC: removed",
		"<22>1 2023-03-14T00:00:31Z mx app - - [unterminated", "<22>1 - - - - - -", "<999999>", "<2", "<>", "",
		"<22>1 2023-03-14T00:00:31Z mx app - - [a b=\"\\", "<0>1 t h a p m [x][y] z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := ParseFrame(s)
		if m.Fields == nil {
			if !strings.HasSuffix(s, m.Line) {
				t.Fatalf("ParseFrame(%q): line %q is not the frame's end", s, m.Line)
			}
			return
		}
		if !strings.HasPrefix(s, "<") || m.Fields.Host == "" || m.Fields.Timestamp == "" || m.Fields.Len() != len(m.Fields.Text()) {
			t.Fatalf("ParseFrame(%q): fields %+v", s, *m.Fields)
		}
	})
}
