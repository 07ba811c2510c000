package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"48h", 48 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"7d", 7 * day, true},
		{"90d", 90 * day, true},
		{"91d", 91 * day, true}, // a duration; the window's limit is the API's
		{"1.5d", 36 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1d12h30m", 36*time.Hour + 30*time.Minute, true},
		{"168h0m0s", 7 * day, true}, // what metav1.Duration writes
		{"1h30m0s", 90 * time.Minute, true},
		{"2.5s", 2500 * time.Millisecond, true},
		{"0.001s", time.Millisecond, true},
		{"0.0001s", 0, false}, // not a whole millisecond
		{"1.00001h", time.Hour + 36*time.Millisecond, true},
		{"1.000001h", 0, false},
		{"1.0001m", time.Minute + 6*time.Millisecond, true},
		{"1.00001m", 0, false},
		{"0s", 0, true},
		{"90.000001d", 90 * day, true}, // whole seconds, as the CEL rules count
		{"", 0, false},
		{"d", 0, false},
		{"abc", 0, false},
		{"week", 0, false},
		{"7D", 0, false},
		{"7 d", 0, false},
		{" 7d", 0, false}, // blanks are the CLIs' to trim
		{"12h1d", 0, false},
		{"1d1d", 0, false},
		{"-1h", 0, false},
		{"+1h", 0, false},
		{"500ms", 0, false},
		{".5h", 0, false},
		{"99999d", 0, false},   // would overflow
		{"9999999h", 0, false}, // would overflow
		{"1h2h", 0, false},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestParseLargest: the longest spelling Pattern allows fits a
// time.Duration (it would wrap to a negative one otherwise).
func TestParseLargest(t *testing.T) {
	d, err := Parse("9999.999999d999999.99999h9999999.9999m999999999.999s")
	if err != nil || d <= 0 {
		t.Fatalf("Parse(largest) = %v, %v", d, err)
	}
}
