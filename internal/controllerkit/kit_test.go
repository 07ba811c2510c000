package controllerkit

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestBackoff(t *testing.T) {
	s := time.Second
	cases := []struct {
		attempts  int32
		base, max time.Duration
		want      time.Duration
	}{
		{0, 5 * s, 5 * time.Minute, 5 * s},
		{1, 5 * s, 5 * time.Minute, 5 * s},
		{2, 5 * s, 5 * time.Minute, 10 * s},
		{3, 5 * s, 5 * time.Minute, 20 * s},
		{6, 5 * s, 5 * time.Minute, 160 * s},
		{7, 5 * s, 5 * time.Minute, 5 * time.Minute},
		{1000, 5 * s, 5 * time.Minute, 5 * time.Minute}, // no overflow
		{1, 10 * time.Minute, 5 * time.Minute, 5 * time.Minute},
		{3, 0, time.Minute, time.Minute},
		{3, 0, 0, 0},
		// The notification controller's defaults.
		{1, 10 * s, 10 * time.Minute, 10 * s},
		{2, 10 * s, 10 * time.Minute, 20 * s},
		{4, 10 * s, 10 * time.Minute, 80 * s},
		{7, 10 * s, 10 * time.Minute, 10 * time.Minute},
		{30, 10 * s, 10 * time.Minute, 10 * time.Minute},
	}
	for _, tc := range cases {
		if got := Backoff(tc.attempts, tc.base, tc.max); got != tc.want {
			t.Errorf("Backoff(%d, %s, %s) = %s, want %s", tc.attempts, tc.base, tc.max, got, tc.want)
		}
	}
}

func TestShortMessage(t *testing.T) {
	if got := ShortMessage("the store did not answer", errors.New("dial tcp:\n  connection refused")); got != "the store did not answer: dial tcp: connection refused" {
		t.Errorf("got %q", got)
	}
	if got := ShortMessage("prefix", nil); got != "prefix" {
		t.Errorf("got %q", got)
	}
	if got := ShortMessage("a\n  b", nil); got != "a b" {
		t.Errorf("got %q", got)
	}
	huge := ShortMessage("p", errors.New(strings.Repeat("ü", 5000)))
	if len(huge) > MaxMessageBytes || !utf8.ValidString(huge) || !strings.HasSuffix(huge, "...") {
		t.Errorf("a huge error gave a %d-byte message (valid UTF-8: %v)", len(huge), utf8.ValidString(huge))
	}
	long := strings.Repeat("é", 600)
	if got := ShortMessage(long, nil); len(got) > MaxMessageBytes || !strings.HasSuffix(got, "...") {
		t.Errorf("ShortMessage of %d bytes gave %d bytes", len(long), len(got))
	}
}

func TestDefault(t *testing.T) {
	d, n, f := time.Duration(0), int32(-1), 0.0
	Default(&d, time.Minute)
	Default(&n, 5)
	Default(&f, 60)
	if d != time.Minute || n != 5 || f != 60 {
		t.Errorf("unset values: %s %d %v", d, n, f)
	}
	d, n, f = time.Second, 2, 0.5
	Default(&d, time.Minute)
	Default(&n, 5)
	Default(&f, 60)
	if d != time.Second || n != 2 || f != 0.5 {
		t.Errorf("set values were replaced: %s %d %v", d, n, f)
	}
	var c clock.PassiveClock
	Default[clock.PassiveClock](&c, clock.RealClock{})
	if _, ok := c.(clock.RealClock); !ok {
		t.Errorf("nil clock defaulted to %T", c)
	}
	fake := clocktesting.NewFakePassiveClock(time.Unix(0, 0))
	c = fake
	Default[clock.PassiveClock](&c, clock.RealClock{})
	if c != fake {
		t.Errorf("a set clock was replaced by %T", c)
	}
}

func TestSetCondition(t *testing.T) {
	var conds []metav1.Condition
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if !SetCondition(&conds, 3, t0, "Ready", metav1.ConditionFalse, "Waiting", "not yet") {
		t.Fatal("first set reported no change")
	}
	// Same status later: the transition time stays, the rest follows.
	SetCondition(&conds, 4, t0.Add(time.Hour), "Ready", metav1.ConditionFalse, "StillWaiting", "still not")
	c := meta.FindStatusCondition(conds, "Ready")
	if c.ObservedGeneration != 4 || c.Reason != "StillWaiting" || c.Message != "still not" || !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("condition %+v", c)
	}
	if SetCondition(&conds, 4, t0.Add(2*time.Hour), "Ready", metav1.ConditionFalse, "StillWaiting", "still not") {
		t.Error("an unchanged condition reported a change")
	}
	SetCondition(&conds, 4, t0.Add(3*time.Hour), "Ready", metav1.ConditionTrue, "Done", "done")
	if c := meta.FindStatusCondition(conds, "Ready"); !c.LastTransitionTime.Time.Equal(t0.Add(3 * time.Hour)) {
		t.Errorf("transition time %s", c.LastTransitionTime)
	}
}
