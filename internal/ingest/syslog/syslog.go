// Package syslog splits one line of a syslog file (as written by rsyslog,
// syslog-ng or journald's forwarders) into its header and message.
//
// Two timestamp forms are accepted:
//
//	RFC 3164:  Mar  1 12:34:56 host prog[pid]: msg        (no year)
//	RFC 3339:  2023-03-01T12:34:56.123456+01:00 host prog[pid]: msg
//
// The libraries that implement the syslog RFCs (influxdata/go-syslog,
// leodido/go-syslog) parse what travels on the wire: they require the
// `<PRI>` prefix, which files on disk do not carry, and they reject the
// damaged lines real files hold (a missing colon after the pid, a truncated
// leading year). This is a line-level parser for files.
package syslog

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Line is one parsed syslog line.
type Line struct {
	// Time of the line. RFC 3164 times are in the location given to the
	// parser; RFC 3339 times keep their offset.
	Time time.Time
	// Host is the syslog host field.
	Host string
	// Program is the tag without the pid: "postfix/smtpd", "amavis".
	Program string
	// PID is the process id, 0 when absent.
	PID int
	// Message is everything after the tag.
	Message string
	// HasYear is false for RFC 3164 timestamps, whose year was inferred.
	HasYear bool
}

// ErrNotSyslog is returned for lines that do not start with a syslog header.
var ErrNotSyslog = errors.New("not syslog")

var months = map[string]time.Month{
	"Jan": time.January, "Feb": time.February, "Mar": time.March, "Apr": time.April,
	"May": time.May, "Jun": time.June, "Jul": time.July, "Aug": time.August,
	"Sep": time.September, "Oct": time.October, "Nov": time.November, "Dec": time.December,
}

// ParseLine parses one line. ref is the reference time that RFC 3164
// timestamps (which carry no year) are placed against: the latest year in
// which the line is not more than a day after ref. With ref = now this is
// what a live tail needs, December lines read in January included. loc is
// the time zone of RFC 3164 timestamps (UTC when nil).
func ParseLine(line string, ref time.Time, loc *time.Location) (Line, error) {
	return parse(line, func(m time.Month, d, hh, mm, ss, ns int) time.Time {
		return yearNotAfter(m, d, hh, mm, ss, ns, ref, loc)
	}, ref)
}

// Parser parses the lines of one file or stream in order and infers the year
// of RFC 3164 timestamps from the lines already seen, so that a file running
// from December into January keeps increasing. The first line is placed as
// ParseLine places it against Reference (the zero Reference means now).
type Parser struct {
	Reference time.Time
	Location  *time.Location
	last      time.Time
}

// Parse parses the next line.
func (p *Parser) Parse(line string) (Line, error) {
	ref := p.last
	if ref.IsZero() {
		ref = p.Reference
		if ref.IsZero() {
			ref = time.Now()
		}
	}
	l, err := parse(line, func(m time.Month, d, hh, mm, ss, ns int) time.Time {
		if p.last.IsZero() {
			return yearNotAfter(m, d, hh, mm, ss, ns, ref, p.Location)
		}
		return yearClosest(m, d, hh, mm, ss, ns, ref, p.Location)
	}, ref)
	if err == nil && l.Time.After(p.last) {
		p.last = l.Time
	}
	return l, err
}

// Last is the latest time seen so far (zero before the first line).
func (p *Parser) Last() time.Time { return p.last }

// Resume continues after a restart as if the latest line seen had time last.
func (p *Parser) Resume(last time.Time) { p.last = last }

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

type placeFunc func(m time.Month, d, hh, mm, ss, ns int) time.Time

func parse(line string, place placeFunc, ref time.Time) (Line, error) {
	var l Line
	rest, ok := "", false
	if len(line) > 0 && line[0] >= '0' && line[0] <= '9' {
		l.Time, rest, ok = parseISO(line, ref)
		l.HasYear = true
	} else {
		l.Time, rest, ok = parse3164(line, place)
	}
	if !ok {
		return Line{}, ErrNotSyslog
	}
	// host
	rest = strings.TrimLeft(rest, " ")
	i := strings.IndexByte(rest, ' ')
	if i <= 0 {
		return Line{}, ErrNotSyslog
	}
	l.Host, rest = rest[:i], rest[i+1:]
	rest = strings.TrimLeft(rest, " ")
	// tag: program[pid]: or program: or program[pid] (colon missing)
	end := 0
	for end < len(rest) && rest[end] != '[' && rest[end] != ':' && rest[end] != ' ' {
		end++
	}
	if end <= 0 || end == len(rest) {
		return Line{}, ErrNotSyslog
	}
	l.Program = rest[:end]
	rest = rest[end:]
	if rest[0] == '[' {
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return Line{}, ErrNotSyslog
		}
		pid, err := atoiDigits(rest[1:j])
		if err != nil || j == 1 || j > 11 {
			return Line{}, ErrNotSyslog
		}
		l.PID = pid
		rest = rest[j+1:]
	}
	rest = strings.TrimPrefix(rest, ":")
	l.Message = strings.TrimPrefix(rest, " ")
	return l, nil
}

func parse3164(s string, place placeFunc) (time.Time, string, bool) {
	// "Mmm dd hh:mm:ss" with dd space-padded; at least 15 bytes.
	if len(s) < 16 {
		return time.Time{}, "", false
	}
	m, ok := months[s[:3]]
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
	t := place(m, d, hh, mm, ss, ns)
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
	var e1, e2, e3 error
	hh, e1 = atoiDigits(s[0:2])
	mm, e2 = atoiDigits(s[3:5])
	ss, e3 = atoiDigits(s[6:8])
	if e1 != nil || e2 != nil || e3 != nil || hh > 23 || mm > 59 || ss > 60 {
		return
	}
	if ss == 60 {
		ss = 59
	}
	rest = s[8:]
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		frac := rest[1:j]
		if len(frac) == 0 {
			return
		}
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, _ := atoiDigits(frac)
		for k := len(frac); k < 9; k++ {
			n *= 10
		}
		ns = n
		rest = rest[j:]
	}
	ok = true
	return
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
// closest to ref.
func parseISO(s string, ref time.Time) (time.Time, string, bool) {
	i := 0
	for i < len(s) && i < 5 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 4 || i >= len(s) || s[i] != '-' {
		return time.Time{}, "", false
	}
	y, _ := atoiDigits(s[:i])
	if i < 4 {
		y = completeYear(y, i, ref)
	}
	s = s[i+1:]
	if len(s) < 6 || s[2] != '-' {
		return time.Time{}, "", false
	}
	mo, e1 := atoiDigits(s[0:2])
	d, e2 := atoiDigits(s[3:5])
	if e1 != nil || e2 != nil || mo < 1 || mo > 12 || d < 1 || d > 31 || (s[5] != 'T' && s[5] != ' ') {
		return time.Time{}, "", false
	}
	hh, mm, ss, ns, rest, ok := parseClock(s[6:])
	if !ok {
		return time.Time{}, "", false
	}
	loc := time.UTC
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
		loc = fixedZone(sign * (oh*3600 + om*60))
	}
	if len(rest) == 0 || rest[0] != ' ' {
		return time.Time{}, "", false
	}
	t := time.Date(y, time.Month(mo), d, hh, mm, ss, ns, loc)
	if t.Day() != d {
		return time.Time{}, "", false
	}
	return t, rest, true
}

// zones caches the fixed zones of offsets that are not whole hours (the
// time package caches those itself): every line of a file carries the same
// one or two, and a new *time.Location per line is an allocation per line.
var zones sync.Map // int -> *time.Location

func fixedZone(offset int) *time.Location {
	if offset%3600 == 0 {
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
