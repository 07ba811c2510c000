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

// The decoder reads both RFC 6587 framings, mixed on one stream, drops
// oversized and cut frames with a reason, and never buffers a long frame.
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
		{"mixed", n + " " + line + line + "\n" + n + " " + line, 0, []frameOut{{line, ""}, {line, ""}, {line, ""}}},
		{"separators between frames", "\n\r\x00\n" + line + "\n\n", 0, []frameOut{{line, ""}}},
		{"ISO timestamp is not a count", "2023-03-14T00:00:31+01:00 h p: m\n", 0, []frameOut{{"2023-03-14T00:00:31+01:00 h p: m", ""}}},
		{"half line at EOF", line + "\n" + "Mar  1 12:00:01 mx post", 0, []frameOut{{line, ""}, {"", DropHalfFrame}}},
		{"octet count cut short", "100 abc", 0, []frameOut{{"", DropHalfFrame}}},
		{"octet count too long", "200 " + strings.Repeat("x", 200) + line + "\n", 100, []frameOut{{"", DropTooLong}, {line, ""}}},
		{"octet count too long and cut", "2000 " + strings.Repeat("x", 20), 100, []frameOut{{"", DropHalfFrame}}},
		{"line too long", strings.Repeat("y", 300) + "\n" + line + "\n", 100, []frameOut{{"", DropTooLong}, {line, ""}}},
		{"newline inside a counted frame", "3 a\nb", 0, []frameOut{{"a b", ""}}},
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

// FuzzDecoder: any byte stream ends, every frame respects the maximum, and
// reading one byte at a time gives the same frames as reading at once.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		"62 Mar  1 12:00:00 mx postfix/smtpd[1]: connect from x[1.2.3.4]",
		"<22>1 2023-03-14T00:00:31Z mx postfix/qmgr - - - ABC: removed\n",
		"5 abc", "0 x\n", "999999999 ", "\n\n\r\x00", "12 ab\ncd\nef\nx\n", "\xff\xfe 3 \x00\x01",
	} {
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
