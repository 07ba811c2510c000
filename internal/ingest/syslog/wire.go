package syslog

import "strings"

// Message is one syslog message as a transport delivers it: a line in the
// form of a file (Line), or, when the sender already split its header (an
// RFC 5424 frame, a JSON record), its Fields.
type Message struct {
	Line   string  // when Fields is nil
	Fields *Fields // nil for a line
}

// Text is the message as a line of a file: Line, or the Fields' file form
// (for logs and samples; the ingest reads Fields as they are).
func (m Message) Text() string {
	if m.Fields != nil {
		return m.Fields.Text()
	}
	return m.Line
}

// ParseFrame reads one syslog message as it travels on the wire (a frame of
// Decoder, a UDP datagram's line, a line an HTTP sender posted):
//
//   - a "<PRI>" prefix is removed;
//   - an RFC 5424 message ("<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG")
//     becomes Fields (structured data and the MSGID are dropped, a BOM
//     before MSG too; an APP of "-" is "unknown", a PROCID of "-" none);
//   - anything else (RFC 3164 "<PRI>Mmm dd hh:mm:ss host tag: msg", or
//     rsyslog's RFC 3339 forward format) is the Line after the PRI.
//
// It never fails: what it cannot read is the Line, unchanged, and the
// reader counts it as not syslog. The Fields are views of s.
func ParseFrame(s string) Message {
	rest, ok := stripPRI(s)
	if !ok {
		return Message{Line: s}
	}
	if strings.HasPrefix(rest, "1 ") {
		if f, ok := rfc5424(rest[2:]); ok {
			return Message{Fields: f}
		}
	}
	return Message{Line: rest}
}

// HasPRI reports whether s starts with a syslog "<PRI>".
func HasPRI(s string) bool {
	_, ok := stripPRI(s)
	return ok
}

func stripPRI(s string) (string, bool) {
	if len(s) < 3 || s[0] != '<' {
		return s, false
	}
	for i := 1; i < len(s) && i <= 4; i++ {
		c := s[i]
		if c == '>' && i > 1 {
			return s[i+1:], true
		}
		if c < '0' || c > '9' {
			return s, false
		}
	}
	return s, false
}

// rfc5424 reads "TIMESTAMP HOST APP PROCID MSGID SD [MSG]".
func rfc5424(s string) (*Fields, bool) {
	var f [5]string
	for i := range f {
		j := strings.IndexByte(s, ' ')
		if j <= 0 {
			return nil, false
		}
		f[i], s = s[:j], s[j+1:]
	}
	ts, host, app, pid := f[0], f[1], f[2], f[3]
	if ts == "-" || host == "-" {
		return nil, false
	}
	// structured data: "-" or one or more [id k="v"...] elements
	switch {
	case strings.HasPrefix(s, "-"):
		s = s[1:]
	case strings.HasPrefix(s, "["):
		i, inQuote := 0, false
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && inQuote {
				i++
				continue
			}
			if c == '"' {
				inQuote = !inQuote
			}
			if c == ']' && !inQuote && (i+1 == len(s) || s[i+1] != '[') {
				break
			}
		}
		if i >= len(s) {
			return nil, false
		}
		s = s[i+1:]
	default:
		return nil, false
	}
	s = strings.TrimPrefix(s, " ")
	s = strings.TrimPrefix(s, "\uFEFF")
	if app == "-" {
		app = "unknown"
	}
	if pid == "-" {
		pid = ""
	}
	return &Fields{Timestamp: ts, Host: host, App: app, ProcID: pid, Message: s}, true
}
