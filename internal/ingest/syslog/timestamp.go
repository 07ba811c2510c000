package syslog

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/fastscan"
)

// month reads a three-letter English month abbreviation (a switch, not a
// map: this runs once per line).
func month(s string) (time.Month, bool) {
	if len(s) < 3 {
		return 0, false
	}
	switch s[:3] {
	case "Jan":
		return time.January, true
	case "Feb":
		return time.February, true
	case "Mar":
		return time.March, true
	case "Apr":
		return time.April, true
	case "May":
		return time.May, true
	case "Jun":
		return time.June, true
	case "Jul":
		return time.July, true
	case "Aug":
		return time.August, true
	case "Sep":
		return time.September, true
	case "Oct":
		return time.October, true
	case "Nov":
		return time.November, true
	case "Dec":
		return time.December, true
	}
	return 0, false
}

func location(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

func yearNotAfter(m time.Month, d, hh, mm, ss, ns int, ref time.Time, loc *time.Location) time.Time {
	loc = location(loc)
	y := ref.In(loc).Year()
	t := time.Date(y, m, d, hh, mm, ss, ns, loc)
	if t.After(ref.Add(24 * time.Hour)) {
		t = time.Date(y-1, m, d, hh, mm, ss, ns, loc)
	}
	return t
}

// yearClosest places the date in the year that brings it closest to ref
// (within six months): a following line that goes from Dec 31 to Jan 1 moves
// to the next year, a late December line read after January stays behind.
func yearClosest(m time.Month, d, hh, mm, ss, ns int, ref time.Time, loc *time.Location) time.Time {
	loc = location(loc)
	y := ref.In(loc).Year()
	t := time.Date(y, m, d, hh, mm, ss, ns, loc)
	const half = 183 * 24 * time.Hour
	switch {
	case t.Sub(ref) > half:
		t = time.Date(y-1, m, d, hh, mm, ss, ns, loc)
	case ref.Sub(t) > half:
		t = time.Date(y+1, m, d, hh, mm, ss, ns, loc)
	}
	return t
}

// placer places an RFC 3164 date (no year) in time: against ref, by
// yearClosest once lines have been seen (closest), by yearNotAfter before.
type placer struct {
	ref     time.Time
	loc     *time.Location
	closest bool
	iso     *isoCache // nil: none
	hdr     *hdrCache // nil: none
}

func (pl *placer) place(m time.Month, d, hh, mm, ss, ns int) time.Time {
	if pl.closest {
		return yearClosest(m, d, hh, mm, ss, ns, pl.ref, pl.loc)
	}
	return yearNotAfter(m, d, hh, mm, ss, ns, pl.ref, pl.loc)
}

func parse3164(s string, pl *placer) (time.Time, string, bool) {
	// "Mmm dd hh:mm:ss" with dd space-padded; at least 15 bytes.
	if len(s) < 16 {
		return time.Time{}, "", false
	}
	m, ok := month(s)
	if !ok || s[3] != ' ' {
		return time.Time{}, "", false
	}
	rest := strings.TrimLeft(s[4:], " ")
	i := strings.IndexByte(rest, ' ')
	if i <= 0 || i > 2 {
		return time.Time{}, "", false
	}
	d, err := strconv.Atoi(rest[:i])
	if err != nil || d < 1 || d > 31 {
		return time.Time{}, "", false
	}
	rest = rest[i+1:]
	hh, mm, ss, ns, rest, ok := parseClock(rest)
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return time.Time{}, "", false
	}
	t := pl.place(m, d, hh, mm, ss, ns)
	if t.Day() != d { // Feb 30 and the like
		return time.Time{}, "", false
	}
	return t, rest, true
}

// parseClock reads hh:mm:ss with optional fractional seconds.
func parseClock(s string) (hh, mm, ss, ns int, rest string, ok bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' {
		return
	}
	var ok1, ok2, ok3 bool
	hh, ok1 = two(s[0], s[1])
	mm, ok2 = two(s[3], s[4])
	ss, ok3 = two(s[6], s[7])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 {
		return
	}
	if ss == 60 {
		ss = 59
	}
	ns, rest, ok = parseFrac(s[8:])
	return
}

// parseFrac reads optional fractional seconds ('.' or ',' and digits, of
// which the first nine count) at the start of s.
func parseFrac(s string) (ns int, rest string, ok bool) {
	if len(s) == 0 || (s[0] != '.' && s[0] != ',') {
		return 0, s, true
	}
	// six digits (microseconds: rsyslog's RFC 3339 times), read at once
	if len(s) > 7 && s[7]-'0' > 9 {
		d1, d2, d3, d4, d5, d6 := s[1]-'0', s[2]-'0', s[3]-'0', s[4]-'0', s[5]-'0', s[6]-'0'
		if d1 <= 9 && d2 <= 9 && d3 <= 9 && d4 <= 9 && d5 <= 9 && d6 <= 9 {
			return (((((int(d1)*10+int(d2))*10+int(d3))*10+int(d4))*10+int(d5))*10 + int(d6)) * 1000, s[7:], true
		}
	}
	// the digits are read as they are counted; past nine (nanoseconds)
	// they are skipped
	j, n := 1, 0
	for ; j < len(s); j++ {
		d := s[j] - '0'
		if d > 9 {
			break
		}
		if j <= 9 {
			n = n*10 + int(d)
		}
	}
	if j == 1 {
		return 0, "", false
	}
	if j < 10 {
		n *= pow10[10-j]
	}
	return n, s[j:], true
}

// pow10[k] is 10**k.
var pow10 = [...]int{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// two reads two decimal digits.
func two(a, b byte) (int, bool) {
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

func atoiDigits(s string) (int, error) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrNotSyslog
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, nil
}

// parseISO reads an RFC 3339 / ISO 8601 timestamp ("T" or space between date
// and time, optional fraction, "Z" or ±hh:mm or ±hhmm, no zone meaning UTC).
// A year truncated to its last one to three digits ("021-02-06T...", seen in
// real files) is completed from ref: the year ending in those digits that is
// closest to ref. The timestamp ends at a space (the rest, returned, starts
// with it) or at the end of s (a Fields' Timestamp).
func parseISO(s string, ref time.Time) (time.Time, string, bool) {
	return parseISOCached(s, ref, nil)
}

// isoCache remembers the date and the zone of the latest RFC 3339
// timestamp a Parser read: the lines of a file share them, and parsing a
// date or a zone is a pure function of its bytes (a four-digit year's; a
// truncated year depends on the reference and is not cached), so equal
// bytes give the equal result without the arithmetic.
type isoCache struct {
	sec    [19]byte  // "YYYY-MM-DDThh:mm:ss" (or a space for the T)
	secW   [2]uint64 // its first sixteen bytes as two words (fastscan.Load64)
	secs   int64     // its seconds since the epoch, as if in UTC
	secOK  bool
	date   [10]byte // "YYYY-MM-DD"
	days   int64    // days since 1970-01-01 of date
	dateOK bool
	zone   [6]byte // "Z", "", "+hh:mm", "+hhmm" as it was written
	zlen   int
	zoneW  uint64 // zone as a word (fastscan.Load64), zlen bytes of it
	off    int
	loc    *time.Location
	zoneOK bool
}

// sameSecond reports whether s (longer than 19 bytes) starts with the
// cached second: s[:19] == string(c.sec[:]), two words and three bytes
// compared in registers instead of a call to the runtime's memequal (the
// check every RFC 3339 line gets).
func (c *isoCache) sameSecond(s string) bool {
	return fastscan.Load64(s) == c.secW[0] && fastscan.Load64(s[8:]) == c.secW[1] &&
		s[16] == c.sec[16] && s[17] == c.sec[17] && s[18] == c.sec[18]
}

// sameZone reports whether rest (longer than c.zlen) starts with the
// cached zone: rest[:c.zlen] == string(c.zone[:c.zlen]), as one word when
// rest has eight bytes.
func (c *isoCache) sameZone(rest string) bool {
	if len(rest) < 8 {
		return rest[:c.zlen] == string(c.zone[:c.zlen])
	}
	mask := ^uint64(0) >> (64 - 8*uint(c.zlen)) // 0 for no zone
	return fastscan.Load64(rest)&mask == c.zoneW
}

func parseISOCached(s string, ref time.Time, c *isoCache) (time.Time, string, bool) {
	var sec int64 // seconds since the epoch of the wall clock, as if in UTC
	var ns int
	var rest string
	if c != nil && c.secOK && len(s) > 19 && c.sameSecond(s) {
		// the same second as the line before: only the fraction is new
		var ok bool
		sec = c.secs
		if ns, rest, ok = parseFrac(s[19:]); !ok {
			return time.Time{}, "", false
		}
	} else {
		full := s
		var days int64
		cacheable := true // a four-digit year: the bytes say it all
		if c != nil && c.dateOK && len(s) > 10 && s[:10] == string(c.date[:]) {
			days = c.days
			s = s[5:] // as below: s is "MM-DD" and the rest
		} else {
			var y, mo, d int
			i := 0
			for i < len(s) && i < 5 && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			if i == 0 || i > 4 || i >= len(s) || s[i] != '-' {
				return time.Time{}, "", false
			}
			y, _ = atoiDigits(s[:i])
			if i < 4 {
				y = completeYear(y, i, ref)
				cacheable = false
			}
			s = s[i+1:]
			if len(s) < 6 || s[2] != '-' {
				return time.Time{}, "", false
			}
			var ok1, ok2 bool
			mo, ok1 = two(s[0], s[1])
			d, ok2 = two(s[3], s[4])
			if !ok1 || !ok2 || mo < 1 || mo > 12 || d < 1 || d > 31 {
				return time.Time{}, "", false
			}
			if d > daysIn(mo, y) { // Feb 30 and the like
				return time.Time{}, "", false
			}
			days = daysFromCivil(y, mo, d)
			if c != nil && cacheable {
				copy(c.date[:], full[:10])
				c.days, c.dateOK = days, true
			}
		}
		if s[5] != 'T' && s[5] != ' ' {
			return time.Time{}, "", false
		}
		hh, mm, ss, frac, r, ok := parseClock(s[6:])
		if !ok {
			return time.Time{}, "", false
		}
		sec, ns, rest = days*86400+int64(hh*3600+mm*60+ss), frac, r
		if c != nil && cacheable {
			// full[:19] is "YYYY-MM-DDThh:mm:ss" (parseClock read 8 bytes)
			copy(c.sec[:], full[:19])
			c.secW = [2]uint64{fastscan.Load64(full), fastscan.Load64(full[8:])}
			c.secs, c.secOK = sec, true
		}
	}
	var loc *time.Location
	var off int
	if c != nil && c.zoneOK && len(rest) > c.zlen && rest[c.zlen] == ' ' && c.sameZone(rest) {
		// (a timestamp at the end of s, a Fields' own, takes the path below)
		loc, off, rest = c.loc, c.off, rest[c.zlen:]
	} else {
		zone := rest
		loc, off = time.UTC, 0
		switch {
		case strings.HasPrefix(rest, "Z"):
			rest = rest[1:]
		case len(rest) > 0 && (rest[0] == '+' || rest[0] == '-'):
			sign := 1
			if rest[0] == '-' {
				sign = -1
			}
			z := rest[1:]
			var oh, om int
			var err1, err2 error
			switch {
			case len(z) >= 5 && z[2] == ':':
				oh, err1 = atoiDigits(z[0:2])
				om, err2 = atoiDigits(z[3:5])
				rest = z[5:]
			case len(z) >= 4:
				oh, err1 = atoiDigits(z[0:2])
				om, err2 = atoiDigits(z[2:4])
				rest = z[4:]
			default:
				return time.Time{}, "", false
			}
			if err1 != nil || err2 != nil || oh > 14 || om > 59 {
				return time.Time{}, "", false
			}
			off = sign * (oh*3600 + om*60)
			loc = fixedZone(off)
		}
		if len(rest) > 0 && rest[0] != ' ' {
			return time.Time{}, "", false
		}
		// (time.FixedZone makes a new Location for every whole-hour offset
		// beyond -12..+14: those are not cached, so each line keeps its own)
		if c != nil && (off%3600 != 0 || off >= -12*3600 && off <= 14*3600) {
			c.zlen = copy(c.zone[:], zone[:len(zone)-len(rest)])
			var w [8]byte
			copy(w[:], c.zone[:c.zlen])
			c.zoneW = binary.LittleEndian.Uint64(w[:])
			c.off, c.loc, c.zoneOK = off, loc, true
		}
	}
	// time.Date(y, mo, d, hh, mm, ss, ns, loc) for a fixed zone, without
	// its zone lookup and normalisation (the fields are in range here).
	return time.Unix(sec-int64(off), int64(ns)).In(loc), rest, true
}

// daysIn returns the number of days of month mo (1-12) of year y.
func daysIn(mo, y int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm, valid for every year).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// zones caches the fixed zones of offsets that are not whole hours (the
// time package caches those itself): every line of a file carries the same
// one or two, and a new *time.Location per line is an allocation per line.
var zones sync.Map // int -> *time.Location

// hourZones are time.FixedZone("", h*3600) for h in -12..14, which the time
// package itself caches (the same pointers), without its sync.Once per call.
var hourZones = func() (z [27]*time.Location) {
	for h := -12; h <= 14; h++ {
		z[h+12] = time.FixedZone("", h*3600)
	}
	return z
}()

func fixedZone(offset int) *time.Location {
	if offset%3600 == 0 {
		if h := offset / 3600; h >= -12 && h <= 14 {
			return hourZones[h+12] // what time.FixedZone returns for these
		}
		return time.FixedZone("", offset)
	}
	if z, ok := zones.Load(offset); ok {
		return z.(*time.Location)
	}
	z, _ := zones.LoadOrStore(offset, time.FixedZone("", offset))
	return z.(*time.Location)
}

func completeYear(y, digits int, ref time.Time) int {
	if ref.IsZero() {
		ref = time.Now()
	}
	mod := 10
	for k := 1; k < digits; k++ {
		mod *= 10
	}
	ry := ref.Year()
	best := ry - ry%mod + y
	for _, c := range []int{best - mod, best + mod} {
		if abs(c-ry) < abs(best-ry) {
			best = c
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
