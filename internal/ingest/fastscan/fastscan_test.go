package fastscan

import (
	"bufio"
	"compress/gzip"
	"math/rand"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// The plain versions: what each trick replaces, and the reference its test
// compares it with.

func plainLoad64(s string) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(s[i])
	}
	return v
}

func plainIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestLoad64(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 100000; i++ {
		b := make([]byte, 8+rng.Intn(20))
		rng.Read(b)
		s := string(b)
		if got, want := Load64(s), plainLoad64(s); got != want {
			t.Fatalf("Load64(%q) = %x, want %x", s, got, want)
		}
		// equal words exactly when the eight bytes are equal
		o := []byte(s[:8])
		if rng.Intn(2) == 0 {
			o[rng.Intn(8)] ^= byte(1 + rng.Intn(255))
		}
		if (Load64(string(o)) == Load64(s)) != (string(o) == s[:8]) {
			t.Fatalf("%q vs %q", o, s[:8])
		}
	}
}

func TestIsASCII(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 100000; i++ {
		b := make([]byte, rng.Intn(100))
		for k := range b {
			b[k] = byte(rng.Intn(128))
		}
		if len(b) > 0 && rng.Intn(2) == 0 {
			b[rng.Intn(len(b))] = byte(128 + rng.Intn(128))
		}
		if got, want := IsASCII(string(b)), plainIsASCII(string(b)); got != want {
			t.Fatalf("IsASCII(%q) = %v, want %v", b, got, want)
		}
	}
}

func TestOffset(t *testing.T) {
	s := strings.Repeat("abcdefgh", 8)
	for i := 0; i <= len(s); i++ {
		for j := i; j <= len(s); j++ {
			off, ok := Offset(s[i:j], s)
			if j > i && (!ok || off != i) {
				t.Fatalf("Offset(s[%d:%d]) = %d, %v", i, j, off, ok)
			}
			if j == i && ok {
				t.Fatalf("Offset of an empty string: %d, true", off)
			}
		}
	}
	// equal bytes elsewhere, a string around s, a string overlapping its end
	if _, ok := Offset(strings.Clone(s[3:9]), s); ok {
		t.Error("a copy of s[3:9] is found in s")
	}
	if _, ok := Offset(s, s[1:]); ok {
		t.Error("s is found in s[1:]")
	}
	if _, ok := Offset(s[10:30], s[:20]); ok {
		t.Error("s[10:30] is found in s[:20]")
	}
}

func TestString(t *testing.T) {
	b := []byte("a line")
	if s := String(b); s != "a line" || len(String(nil)) != 0 {
		t.Fatalf("String: %q", s)
	}
}

// benchLines are the first 1,000 lines of the benchmark log (see
// internal/ingest/bench_test.go), or made-up lines without it: few enough
// to stay in the cache, as a line just read is when it is scanned.
func benchLines(b *testing.B) []string {
	b.Helper()
	f, err := os.Open("../../../../shared/maildata/postfix-logsums/mail.log.gz")
	if err != nil {
		return []string{
			"2023-03-14T00:08:33.579644+01:00 helga postfix/smtpd[297535]: 4PbC4x469Jz3tBr: client=mail.example.net[185.31.160.120]",
			"2023-03-14T00:08:33.787870+01:00 helga postfix/qmgr[3163066]: 4PbC4x469Jz3tBr: from=<a@example.net>, size=175061, nrcpt=1 (queue active)",
			"2023-03-14T00:08:34.000000+01:00 helga postfix/postscreen[1234]: CONNECT from [192.0.2.1]:51234 to [192.0.2.2]:25",
		}
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() && len(lines) < 1000 {
		lines = append(lines, sc.Text())
	}
	return lines
}

var sinkBool bool

func perLine(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/line")
}

func BenchmarkFastLoad64(b *testing.B) {
	lines := benchLines(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 1; k < len(lines); k++ {
			if len(lines[k]) >= 38 && len(lines[k-1]) >= 38 {
				sinkBool = Load64(lines[k][30:]) == Load64(lines[k-1][30:])
			}
		}
	}
	perLine(b, len(lines))
}

func BenchmarkPlainLoad64(b *testing.B) {
	lines := benchLines(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 1; k < len(lines); k++ {
			if len(lines[k]) >= 38 && len(lines[k-1]) >= 38 {
				sinkBool = lines[k][30:38] == lines[k-1][30:38]
			}
		}
	}
	perLine(b, len(lines))
}

func BenchmarkFastIsASCII(b *testing.B) {
	lines := benchLines(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			sinkBool = IsASCII(l)
		}
	}
	perLine(b, len(lines))
}

func BenchmarkPlainIsASCII(b *testing.B) {
	lines := benchLines(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			sinkBool = utf8.ValidString(l)
		}
	}
	perLine(b, len(lines))
}

var sinkString string

func BenchmarkFastString(b *testing.B) {
	lines := benchLines(b)
	bs := make([][]byte, len(lines))
	for i, l := range lines {
		bs[i] = []byte(l)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range bs {
			sinkString = String(l)
		}
	}
	perLine(b, len(bs))
}

func BenchmarkPlainString(b *testing.B) {
	lines := benchLines(b)
	bs := make([][]byte, len(lines))
	for i, l := range lines {
		bs[i] = []byte(l)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range bs {
			sinkString = string(l)
		}
	}
	perLine(b, len(bs))
}
