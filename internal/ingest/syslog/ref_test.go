package syslog

import (
	"bufio"
	"compress/gzip"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The parser as it was before it was made faster (commit 1599c23), kept
// as the reference the fast one must agree with, line for line.

type placeFunc func(m time.Month, d, hh, mm, ss, ns int) time.Time

type refParser struct {
	Reference time.Time
	Location  *time.Location
	last      time.Time
}

func (p *refParser) Parse(line string) (Line, error) {
	ref := p.last
	if ref.IsZero() {
		ref = p.Reference
		if ref.IsZero() {
			ref = time.Now()
		}
	}
	l, err := refParse(line, func(m time.Month, d, hh, mm, ss, ns int) time.Time {
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

func refParse(line string, place placeFunc, ref time.Time) (Line, error) {
	var l Line
	rest, ok := "", false
	if len(line) > 0 && line[0] >= '0' && line[0] <= '9' {
		l.Time, rest, ok = refParseISO(line, ref)
		l.HasYear = true
	} else {
		l.Time, rest, ok = refParse3164(line, place)
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

func refParse3164(s string, place placeFunc) (time.Time, string, bool) {
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
	hh, mm, ss, ns, rest, ok := refParseClock(rest)
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
func refParseClock(s string) (hh, mm, ss, ns int, rest string, ok bool) {
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

// parseISO reads an RFC 3339 / ISO 8601 timestamp ("T" or space between date
// and time, optional fraction, "Z" or ±hh:mm or ±hhmm, no zone meaning UTC).
// A year truncated to its last one to three digits ("021-02-06T...", seen in
// real files) is completed from ref: the year ending in those digits that is
// closest to ref.
func refParseISO(s string, ref time.Time) (time.Time, string, bool) {
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
	hh, mm, ss, ns, rest, ok := refParseClock(s[6:])
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

// sampleLines are the lines of the shared maildata files, and mutations of
// them (timestamps with other dates, zones, fractions and damage).
func sampleLines(t *testing.T) []string {
	var lines []string
	root := "../../../../shared/maildata"
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".json") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				return nil
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return nil
	})
	if len(lines) == 0 {
		t.Skip("no maildata")
	}
	rng := rand.New(rand.NewSource(2))
	stamps := []string{"2023-03-14T00:00:31.185246+01:00", "2023-03-14T00:00:31+01:00", "2023-03-14T00:00:31Z", "2023-03-14 00:00:31",
		"2023-03-14T00:00:31.1-0530", "2024-02-29T23:59:60.999999999+14:00", "2023-02-29T00:00:00Z", "021-02-06T10:57:57+01:00",
		"2023-03-14T00:00:31.185246+01:0", "2023-03-14T00:00:31.+01:00", "2023-13-01T00:00:00Z", "Mar  1 12:34:56", "Feb 30 00:00:00",
		"Dec 31 23:59:59", "Jan  1 00:00:01", "Jun 04 22:24:28", "2023-03-14T00:00:31.185246-13:00", "0000-01-01T00:00:00Z"}
	var out []string
	for _, l := range lines {
		out = append(out, l)
		sp := strings.IndexByte(l, ' ')
		if strings.HasPrefix(l, "Jan") || strings.HasPrefix(l, "Feb") || len(l) > 3 && l[3] == ' ' {
			sp = 15
		}
		if sp > 0 && sp < len(l) {
			for k := 0; k < 3; k++ {
				m := stamps[rng.Intn(len(stamps))] + l[sp:]
				out = append(out, m)
				if len(m) > 0 {
					b := []byte(m)
					b[rng.Intn(len(b))] = "[]: 0aZ+-."[rng.Intn(10)]
					out = append(out, string(b))
				}
			}
		}
	}
	return out
}

// The fast parser gives the same Line (== on every field, time.Time's
// location pointer included) and the same error as the reference, line
// after line through one Parser, and for ParseLine.
func TestParserMatchesReference(t *testing.T) {
	lines := sampleLines(t)
	ref := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		vienna = time.FixedZone("x", 3600)
	}
	for _, loc := range []*time.Location{nil, vienna} {
		fast := Parser{Reference: ref, Location: loc}
		slow := refParser{Reference: ref, Location: loc}
		for _, l := range lines {
			a, e1 := fast.Parse(l)
			b, e2 := slow.Parse(l)
			if !sameLine(a, b) || e1 != e2 {
				t.Fatalf("%q:\nfast %#v %v\nref  %#v %v", l, a, e1, b, e2)
			}
			pa, e1 := ParseLine(l, ref, loc)
			pb, e2 := refParse(l, func(m time.Month, d, hh, mm, ss, ns int) time.Time {
				return yearNotAfter(m, d, hh, mm, ss, ns, ref, loc)
			}, ref)
			if !sameLine(pa, pb) || e1 != e2 {
				t.Fatalf("ParseLine %q:\nfast %#v %v\nref  %#v %v", l, pa, e1, pb, e2)
			}
		}
		t.Logf("%d lines agree", len(lines))
	}
}

// sameLine is a == b, except that time.FixedZone makes a new *Location
// for each call with a whole-hour offset beyond -12..+14 (-13:00, -14:00):
// two parsers cannot share that pointer, only its zone.
func sameLine(a, b Line) bool {
	if a == b {
		return true
	}
	_, off := a.Time.Zone()
	_, offB := b.Time.Zone()
	if off != offB || off%3600 != 0 || off >= -12*3600 && off <= 14*3600 || !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b
}

// FuzzParserMatchesReference: any line, parsed twice in a row by the fast
// Parser and the reference (the second time with the date and zone
// remembered), gives the same Line and error.
func FuzzParserMatchesReference(f *testing.F) {
	for _, s := range []string{
		"2023-03-14T00:00:31.185246+01:00 helga postfix/postscreen[3163107]: CONNECT from [1.2.3.4]:36942 to [5.6.7.8]:25",
		"Mar  1 12:34:56 host postfix/smtpd[123]: connect from x[1.2.3.4]",
		"021-02-06T10:57:57+01:00 mail.server.com postfix/smtpd[59633]: D6DDA23B0F: client=unknown[99.88.77.66]",
		"2024-08-26T01:33:38Z machine postfix/submission/smtpd[60203]: warning: x",
		"2023-03-14 00:00:31-0530 h p: m",
	} {
		f.Add(s, s)
	}
	ref := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, a, b string) {
		fast := Parser{Reference: ref}
		slow := refParser{Reference: ref}
		for _, l := range []string{a, b, a} {
			x, e1 := fast.Parse(l)
			y, e2 := slow.Parse(l)
			if !sameLine(x, y) || e1 != e2 {
				t.Fatalf("%q:\nfast %#v %v\nref  %#v %v", l, x, e1, y, e2)
			}
		}
	})
}
