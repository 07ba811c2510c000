package syslog

import (
	"errors"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/fastscan"
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

// ParseLine parses one line. ref is the reference time that RFC 3164
// timestamps (which carry no year) are placed against: the latest year in
// which the line is not more than a day after ref. With ref = now this is
// what a live tail needs, December lines read in January included. loc is
// the time zone of RFC 3164 timestamps (UTC when nil).
func ParseLine(line string, ref time.Time, loc *time.Location) (Line, error) {
	var l Line
	err := parse(&l, line, &placer{ref: ref, loc: loc})
	return l, err
}

// Parser parses the lines of one file or stream in order and infers the year
// of RFC 3164 timestamps from the lines already seen, so that a file running
// from December into January keeps increasing. The first line is placed as
// ParseLine places it against Reference (the zero Reference means now).
type Parser struct {
	Reference time.Time
	Location  *time.Location
	last      time.Time
	iso       isoCache
	hdr       hdrCache
}

// hdrCache remembers the headers (host and tag, "host prog[pid]: ") of the
// latest lines a Parser read: a process logs many lines in a row (in a
// production Postfix log, nine lines in ten repeat one of the four headers
// before them), and the fields of a header are a pure function of its
// bytes, so a line starting with a known header gets them by one
// comparison instead of a scan.
type hdrCache struct {
	e    [4]hdrEntry
	next int // the entry the next new header replaces
	hit  int // the entry the latest line matched: tried first (no two match)
}

// hdrEntry is one header: its bytes, from right after the timestamp to the
// start of the message, and where its fields are within them.
type hdrEntry struct {
	b                         [hdrMax]byte
	n                         int    // 0: empty
	tail                      uint64 // the header's last eight bytes: most misses differ there (the pid)
	hostOff, hostLen, progOff int
	progLen, pid              int
}

const hdrMax = 72

// lookup returns the entry whose header starts rest.
func (c *hdrCache) lookup(rest string) *hdrEntry {
	if e := &c.e[c.hit&3]; e.matches(rest) {
		return e
	}
	for i := range c.e {
		if e := &c.e[i]; i != c.hit && e.matches(rest) {
			c.hit = i
			return e
		}
	}
	return nil
}

// matches reports whether rest starts with the header.
func (e *hdrEntry) matches(rest string) bool {
	return e.n > 0 && len(rest) >= e.n && fastscan.Load64(rest[e.n-8:]) == e.tail && rest[:e.n] == string(e.b[:e.n])
}

// add remembers the header rest[:n] with its fields at the given offsets.
func (c *hdrCache) add(rest string, n, hostOff, hostLen, progOff, progLen, pid int) {
	if n > hdrMax || n < 8 {
		return
	}
	e := &c.e[c.next]
	c.next = (c.next + 1) % len(c.e)
	copy(e.b[:], rest[:n])
	e.n, e.hostOff, e.hostLen, e.progOff, e.progLen, e.pid = n, hostOff, hostLen, progOff, progLen, pid
	e.tail = fastscan.Load64(rest[n-8:])
}

// Parse parses the next line.
func (p *Parser) Parse(line string) (Line, error) {
	var l Line
	err := p.ParseInto(&l, line)
	return l, err
}

// ParseInto is Parse into *l (which is overwritten; on error it is the zero
// Line): a reader of many lines reuses one Line.
func (p *Parser) ParseInto(l *Line, line string) error {
	pl := placer{ref: p.last, loc: p.Location, closest: true}
	if pl.ref.IsZero() {
		pl.closest = false
		pl.ref = p.Reference
		if pl.ref.IsZero() {
			pl.ref = time.Now()
		}
	}
	pl.iso = &p.iso
	pl.hdr = &p.hdr
	err := parse(l, line, &pl)
	if err == nil && l.Time.After(p.last) {
		p.last = l.Time
	}
	return err
}

// Last is the latest time seen so far (zero before the first line).
func (p *Parser) Last() time.Time { return p.last }

// Resume continues after a restart as if the latest line seen had time last.
func (p *Parser) Resume(last time.Time) { p.last = last }

// tagEnd marks the bytes that end a syslog tag's program name.
var tagEnd = [256]bool{'[': true, ':': true, ' ': true}

// indexTagEnd returns the index of the first '[', ':' or ' ' in s, or
// len(s).
func indexTagEnd(s string) int {
	i := 0
	for i < len(s) && !tagEnd[s[i]] {
		i++
	}
	return i
}

func parse(l *Line, line string, pl *placer) error {
	*l = Line{}
	rest, ok := "", false
	if len(line) > 0 && line[0] >= '0' && line[0] <= '9' {
		l.Time, rest, ok = parseISOCached(line, pl.ref, pl.iso)
		l.HasYear = true
	} else {
		l.Time, rest, ok = parse3164(line, pl)
	}
	if !ok {
		*l = Line{}
		return ErrNotSyslog
	}
	if pl.hdr != nil {
		if e := pl.hdr.lookup(rest); e != nil {
			l.Host = rest[e.hostOff : e.hostOff+e.hostLen]
			l.Program = rest[e.progOff : e.progOff+e.progLen]
			l.PID = e.pid
			l.Message = rest[e.n:]
			return nil
		}
	}
	hdr := rest
	// host
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	i := strings.IndexByte(rest, ' ')
	if i <= 0 {
		*l = Line{}
		return ErrNotSyslog
	}
	l.Host, rest = rest[:i], rest[i+1:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	// tag: program[pid]: or program: or program[pid] (colon missing)
	end := indexTagEnd(rest)
	if end <= 0 || end == len(rest) {
		*l = Line{}
		return ErrNotSyslog
	}
	l.Program = rest[:end]
	rest = rest[end:]
	if rest[0] == '[' {
		// [digits]: at most 10 digits, closed by ']'
		j, pid := 1, 0
		for j < len(rest) && j <= 11 && rest[j] >= '0' && rest[j] <= '9' {
			pid = pid*10 + int(rest[j]-'0')
			j++
		}
		if j >= len(rest) || rest[j] != ']' || j == 1 || j > 11 {
			*l = Line{}
			return ErrNotSyslog
		}
		l.PID = pid
		rest = rest[j+1:]
	}
	if pl.hdr != nil && len(rest) >= 2 && rest[0] == ':' && rest[1] == ' ' {
		// Only a header that ends in ": " is remembered: then the message
		// starts right after it whatever follows.
		off := func(sub string) int {
			i, _ := fastscan.Offset(sub, hdr) // host, program and rest are views of hdr
			return i
		}
		pl.hdr.add(hdr, off(rest)+2, off(l.Host), len(l.Host), off(l.Program), len(l.Program), l.PID)
	}
	rest = strings.TrimPrefix(rest, ":")
	l.Message = strings.TrimPrefix(rest, " ")
	return nil
}
