package syslog

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailtrace/mailtrace/internal/ingest/fastscan"
)

// Fields are the header fields and the message of a syslog message whose
// sender already split them: an RFC 5424 frame (ParseFrame), or a JSON
// record of Fluent Bit, Vector or journald. Parser.ParseFields reads them
// into a Line as Parser.ParseInto reads a line, without joining them into
// one first.
type Fields struct {
	// Timestamp is the time as the sender wrote it (RFC 3339); when empty,
	// Time is the time.
	Timestamp string
	Time      time.Time
	Host      string
	App       string // the program: "postfix/smtpd"
	ProcID    string // the pid; empty when there is none
	Message   string
}

// AppendText appends the message as a line of a file:
// "TIMESTAMP HOST APP[PROCID]: MESSAGE" (no "[PROCID]" without one; Time in
// RFC 3339 with nanoseconds when there is no Timestamp). This line is the
// message's identity where one is needed (an event ID is a digest of the
// line it came from): the line these fields were once joined into, so the
// identity of a message does not change with the way it is read.
func (f *Fields) AppendText(b []byte) []byte {
	if f.Timestamp != "" {
		b = append(b, f.Timestamp...)
	} else {
		b = f.Time.AppendFormat(b, time.RFC3339Nano)
	}
	b = append(b, ' ')
	b = append(b, f.Host...)
	b = append(b, ' ')
	b = append(b, f.App...)
	if f.ProcID != "" {
		b = append(b, '[')
		b = append(b, f.ProcID...)
		b = append(b, ']')
	}
	b = append(b, ": "...)
	return append(b, f.Message...)
}

// Text is AppendText as a string.
func (f *Fields) Text() string {
	return string(f.AppendText(make([]byte, 0, f.Len())))
}

// Len is len(f.Text()), without making it.
func (f *Fields) Len() int {
	n := len(f.Timestamp)
	if n == 0 {
		var buf [64]byte
		n = len(f.Time.AppendFormat(buf[:0], time.RFC3339Nano))
	}
	n += 1 + len(f.Host) + 1 + len(f.App) + 2 + len(f.Message)
	if f.ProcID != "" {
		n += len(f.ProcID) + 2
	}
	return n
}

// ValidUTF8 reports whether every field is valid UTF-8.
func (f *Fields) ValidUTF8() bool {
	for _, s := range [...]string{f.Timestamp, f.Host, f.App, f.ProcID, f.Message} {
		if !fastscan.IsASCII(s) && !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// ToValidUTF8 returns the fields with each run of bytes that is not valid
// UTF-8 replaced by U+FFFD, as strings.ToValidUTF8 does to their Text (the
// separators between the fields are ASCII, so no run spans two fields).
func (f Fields) ToValidUTF8() Fields {
	for _, s := range [...]*string{&f.Timestamp, &f.Host, &f.App, &f.ProcID, &f.Message} {
		*s = strings.ToValidUTF8(*s, "\uFFFD")
	}
	return f
}

// ParseFields reads f into *l (which is overwritten; on error it is the
// zero Line) and, like ParseInto, lets its time place the RFC 3164 lines
// that follow. The Line is the one ParseInto gives for f.Text(), for every
// f this accepts; it refuses with ErrNotSyslog what a line of a file could
// not carry, which the joined line would have read differently or not at
// all: a Timestamp that is not RFC 3339 (or a Time outside the years 0 to
// 9999, or whose zone is not whole minutes), an empty Host or one with a
// space, an empty App or one with '[', ':' or a space, a ProcID that is not
// 1 to 10 digits.
func (p *Parser) ParseFields(l *Line, f *Fields) error {
	*l = Line{}
	var t time.Time
	switch {
	case f.Timestamp != "":
		if c := f.Timestamp[0]; c < '0' || c > '9' {
			return ErrNotSyslog
		}
		// the reference ParseInto places a truncated year against
		ref := p.last
		if ref.IsZero() {
			if ref = p.Reference; ref.IsZero() {
				ref = time.Now()
			}
		}
		var rest string
		var ok bool
		t, rest, ok = parseISOCached(f.Timestamp, ref, &p.iso)
		if !ok || rest != "" {
			return ErrNotSyslog
		}
	case lineTime(f.Time):
		t = f.Time
	default:
		return ErrNotSyslog
	}
	if f.Host == "" || strings.IndexByte(f.Host, ' ') >= 0 ||
		f.App == "" || indexTagEnd(f.App) < len(f.App) {
		return ErrNotSyslog
	}
	pid := 0
	if f.ProcID != "" {
		if len(f.ProcID) > 10 {
			return ErrNotSyslog
		}
		for i := 0; i < len(f.ProcID); i++ {
			c := f.ProcID[i]
			if c < '0' || c > '9' {
				return ErrNotSyslog
			}
			pid = pid*10 + int(c-'0')
		}
	}
	*l = Line{Time: t, Host: f.Host, Program: f.App, PID: pid, Message: f.Message, HasYear: true}
	if t.After(p.last) {
		p.last = t
	}
	return nil
}

// lineTime reports whether t survives a line of a file: written in RFC
// 3339 (AppendText) and read back (ParseInto), it is the same instant.
func lineTime(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	if off < 0 {
		off = -off
	}
	return off%60 == 0 && off/3600 <= 14
}
