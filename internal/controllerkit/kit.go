// Package controllerkit is the plumbing every mailtrace controller shares,
// written once: the status write (PatchStatus, with an optimistic lock, and
// AfterWrite for what a reconcile returns after it), the condition setter
// (SetCondition), condition messages (ShortMessage), retry waits (Backoff)
// and option defaults (Default). Controllers keep their decisions; this
// package only carries them out the same way everywhere.
package controllerkit

import (
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SetCondition sets the condition typ of conds, observed at generation, at
// now, following the API conventions (meta.SetStatusCondition: the
// transition time moves only when the status does). It reports whether the
// conditions changed.
func SetCondition[T, R ~string](conds *[]metav1.Condition, generation int64, now time.Time, typ T, status metav1.ConditionStatus, reason R, message string) bool {
	return meta.SetStatusCondition(conds, metav1.Condition{
		Type:               string(typ),
		Status:             status,
		Reason:             string(reason),
		Message:            message,
		ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// MaxMessageBytes bounds a condition message (and any other status text
// made with ShortMessage).
const MaxMessageBytes = 512

// ShortMessage makes a status message: prefix, then ": " and err when err
// is not nil; one line (each run of white space becomes one space), at most
// MaxMessageBytes bytes, cut on a character boundary and marked "...".
func ShortMessage(prefix string, err error) string {
	msg := prefix
	if err != nil {
		msg += ": " + err.Error()
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	cut := MaxMessageBytes - len("...")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "..."
}

// Backoff is the wait before retrying after the given number of failed
// attempts (1 for the first failure): base, doubling, at most maxWait
// (maxWait at once when base is not positive).
func Backoff(attempts int32, base, maxWait time.Duration) time.Duration {
	if base <= 0 {
		return maxWait
	}
	d := base
	for i := int32(1); i < attempts; i++ {
		d *= 2
		if d >= maxWait {
			return maxWait
		}
	}
	return min(d, maxWait)
}

// Default sets *p to def when *p is not set: its zero value (nil for a
// client or a clock), or a negative number (a negative duration, count or
// rate in Options means "not set" too).
func Default[T comparable](p *T, def T) {
	var zero T
	if *p == zero || negative(*p) {
		*p = def
	}
}

func negative(v any) bool {
	switch n := v.(type) {
	case time.Duration:
		return n < 0
	case int:
		return n < 0
	case int32:
		return n < 0
	case int64:
		return n < 0
	case float64:
		return n < 0
	}
	return false
}
