// Package duration reads the lengths of time a mail admin writes: Go's
// durations (48h, 90m, 1h30m) and days (7d, 1.5d, 1d12h). It is the one
// parser of the CLIs' --since, the store URL's retention and the window of
// MessageTraces and MessageTraceSchedules, so that all accept the same
// spellings; the CRDs' CEL rules match Pattern, the same grammar.
package duration

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Pattern is the grammar of a duration: optional days, hours, minutes and
// seconds in that order, each a decimal number with an optional fraction,
// such as 7d, 48h, 90m, 1d12h or 168h0m0s (what metav1.Duration writes).
// The digit counts are bounded so that no spelling overflows a
// time.Duration (or a CEL duration): at most about 190 years in all; the
// fractions so that every duration is a whole number of milliseconds (days
// count whole seconds), the unit the CRDs' rules compare in. Those rules,
// the x-kubernetes-validations of window, repeat Pattern verbatim (a test
// checks they do).
const Pattern = `^([0-9]{1,4}([.][0-9]{1,6})?d)?([0-9]{1,6}([.][0-9]{1,5})?h)?([0-9]{1,7}([.][0-9]{1,4})?m)?([0-9]{1,9}([.][0-9]{1,3})?s)?$`

var re = regexp.MustCompile(Pattern)

// Day is 24 hours (no daylight saving time: a trace's range is in UTC).
const Day = 24 * time.Hour

// Parse reads s (see Pattern). Days count whole seconds, as the CEL rules
// do (int(double(days) * 86400.0) seconds), so Parse and the API server
// agree at every limit.
func Parse(s string) (time.Duration, error) {
	if s == "" || !re.MatchString(s) {
		return 0, fmt.Errorf("%q is not a duration such as 48h, 90m or 7d", s)
	}
	var d time.Duration
	rest := s
	if days, after, ok := strings.Cut(s, "d"); ok {
		f, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 48h, 90m or 7d", s)
		}
		d, rest = time.Duration(int64(f*86400))*time.Second, after
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 48h, 90m or 7d", s)
		}
		d += r
	}
	return d, nil
}
