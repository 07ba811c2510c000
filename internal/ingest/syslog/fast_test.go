package syslog

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// parseISO computes the time by hand instead of time.Date: the result must
// be the very same time.Time value (==, so the same location pointer too),
// and the same dates must be refused.
func TestParseISOMatchesTimeDate(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ref := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	zones := []string{"Z", "", "+01:00", "-05:00", "+0530", "-09:30", "+14:00", "+00:00", "-12:00"}
	offs := []int{0, 0, 3600, -5 * 3600, 5*3600 + 1800, -(9*3600 + 1800), 14 * 3600, 0, -12 * 3600}
	for i := 0; i < 200000; i++ {
		y := []int{0, 1, 4, 100, 400, 1600, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 9999}[rng.Intn(14)]
		if rng.Intn(2) == 0 {
			y = rng.Intn(10000)
		}
		mo, d := 1+rng.Intn(12), 1+rng.Intn(31)
		hh, mm, ss := rng.Intn(24), rng.Intn(60), rng.Intn(61)
		ns := rng.Intn(1e9)
		zi := rng.Intn(len(zones))
		line := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%09d%s host prog: x", y, mo, d, hh, mm, ss, ns, zones[zi])
		got, _, ok := parseISO(line, ref)
		loc := time.UTC
		if zones[zi] != "Z" && zones[zi] != "" {
			loc = fixedZone(offs[zi])
		}
		s := ss
		if s == 60 {
			s = 59
		}
		want := time.Date(y, time.Month(mo), d, hh, mm, s, ns, loc)
		wantOK := want.Day() == d
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("%q: got %v (%#v) %v, want %v (%#v) %v", line, got, got, ok, want, want, wantOK)
		}
	}
}

// fixedZone hands out the very pointers time.FixedZone does for whole hours.
func TestHourZonesAreTimeFixedZones(t *testing.T) {
	for h := -12; h <= 14; h++ {
		if fixedZone(h*3600) != time.FixedZone("", h*3600) {
			t.Errorf("offset %dh: another *time.Location than time.FixedZone's", h)
		}
	}
}

// TestParseISOCachedMatchesUncached: runs of timestamps that share their
// date, their second or their zone, in varied fraction lengths, read through
// one cache, give what each gives read alone.
func TestParseISOCachedMatchesUncached(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	ref := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	zones := []string{"Z", "", "+01:00", "-0530", "+14:00"}
	fracs := []string{"", ".", ",5", ".1", ".123456", ".123456789", ".1234567891234", ".x"}
	var c isoCache
	sec := "2023-03-14T01:25:42"
	for i := 0; i < 200000; i++ {
		switch rng.Intn(8) {
		case 0: // another day
			sec = fmt.Sprintf("%04d-%02d-%02d%c%02d:%02d:%02d", 2020+rng.Intn(6), 1+rng.Intn(12), 1+rng.Intn(31), "T "[rng.Intn(2)], rng.Intn(24), rng.Intn(60), rng.Intn(61))
		case 1: // another second of the same day
			sec = fmt.Sprintf("%s%02d:%02d:%02d", sec[:11], rng.Intn(24), rng.Intn(60), rng.Intn(61))
		}
		ts := sec
		if rng.Intn(8) == 0 { // a truncated year (never cached)
			ts = sec[1+rng.Intn(3):]
		}
		line := ts + fracs[rng.Intn(len(fracs))] + zones[rng.Intn(len(zones))] + " host prog: x"
		want, wrest, wok := parseISO(line, ref)
		got, rest, ok := parseISOCached(line, ref, &c)
		if ok != wok || got != want || rest != wrest {
			t.Fatalf("%q: cached %v %q %v, alone %v %q %v", line, got, rest, ok, want, wrest, wok)
		}
	}
}
