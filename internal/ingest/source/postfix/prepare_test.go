package postfix

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
