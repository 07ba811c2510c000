package ingest

import (
	"math/rand"
	"strings"
	"testing"
)

func TestSentDataIsContains(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	words := []string{" data=", " bdat=", "data=", " dat=", " data", "=", " ", "x", " bdat", "a", "d", "ta=1"}
	for i := 0; i < 100000; i++ {
		var b strings.Builder
		for k := rng.Intn(8); k > 0; k-- {
			b.WriteString(words[rng.Intn(len(words))])
		}
		s := b.String()
		want := strings.Contains(s, " data=") || strings.Contains(s, " bdat=")
		if got := sentData(s); got != want {
			t.Fatalf("sentData(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestIsASCII(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 100000; i++ {
		b := make([]byte, rng.Intn(50))
		for k := range b {
			b[k] = byte(rng.Intn(128))
		}
		if len(b) > 0 && rng.Intn(2) == 0 {
			b[rng.Intn(len(b))] = byte(128 + rng.Intn(128))
		}
		want := true
		for _, c := range b {
			if c >= 0x80 {
				want = false
			}
		}
		if got := isASCII(string(b)); got != want {
			t.Fatalf("isASCII(%q) = %v, want %v", b, got, want)
		}
	}
}
