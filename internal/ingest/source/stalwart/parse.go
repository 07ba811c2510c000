package stalwart

import (
	"math/bits"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/fastscan"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// The grammar of a Stalwart event as its text tracer writes it (the log
// file, the console, and so journald and container logs):
//
//	[TIMESTAMP ]LEVEL Description (family.event-id) key = value, key = value, ...
//
// Values are "strings" (with \\, \n, \r and \t escaped, a '"' inside
// not), numbers, IP addresses, RFC 3339 times, durations ("8ms"), lists
// ([v, v]), nested events ("Description (id) { key = value }") and
// (null); older versions wrote an empty sender as <> unquoted. An event
// inside a span (a delivery attempt, an SMTP session) carries the span's
// keys first (queueId, from, to, size, total of the attempt; listenerId,
// localPort, remoteIp, remotePort of the session), then its own: a key
// may appear twice, the event's own is the last (Event.Last).
//
// No library reads this format; it is read here by hand, one pass over the
// line, keeping substrings of it (no copy).

// Event is one parsed Stalwart line.
type Event struct {
	Level string // "INFO", ...; empty when the line has none
	Desc  string // "Delivery attempt started"
	ID    string // "delivery.attempt-start"
	Keys  []KV
}

// KV is one key and its value; a string value unquoted (Quoted), a list
// as its elements (List), anything else as written.
type KV struct {
	Key    string
	Value  string
	Quoted bool
	List   []string
}

// Last returns the value of the last occurrence of key (the event's own,
// after its span's), and whether it is there.
func (e *Event) Last(key string) (KV, bool) {
	for i := len(e.Keys) - 1; i >= 0; i-- {
		if e.Keys[i].Key == key {
			return e.Keys[i], true
		}
	}
	return KV{}, false
}

// First returns the value of the first occurrence of key (the span's, when
// the event repeats it).
func (e *Event) First(key string) (KV, bool) {
	for i := range e.Keys {
		if e.Keys[i].Key == key {
			return e.Keys[i], true
		}
	}
	return KV{}, false
}

// Str is Last(key)'s value as text ("" when absent); an unquoted <> (the
// null sender of older versions) is "".
func (e *Event) Str(key string) string {
	kv, _ := e.Last(key)
	if kv.Value == "<>" && !kv.Quoted {
		return ""
	}
	return kv.Value
}

// Count returns how many times key occurs.
func (e *Event) Count(key string) int {
	n := 0
	for i := range e.Keys {
		if e.Keys[i].Key == key {
			n++
		}
	}
	return n
}

var levels = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}

// levelStart marks the first letters of levels.
var levelStart = func() (t [256]bool) {
	for _, l := range levels {
		t[l[0]] = true
	}
	return t
}()

// EventID returns the event id of a line ("delivery.attempt-start") and
// the rest of the line after it, without parsing the keys; false when the
// line is not a Stalwart event.
func EventID(msg string) (id, rest string, ok bool) {
	// the id is the first "(family.event)" followed by a space or the end
	for from := 0; ; {
		i := strings.Index(msg[from:], " (")
		if i < 0 {
			return "", "", false
		}
		i += from + 2
		j := strings.IndexByte(msg[i:], ')')
		if j < 0 {
			return "", "", false
		}
		cand := msg[i : i+j]
		after := msg[i+j+1:]
		if isEventID(cand) && (after == "" || after[0] == ' ') {
			return cand, strings.TrimPrefix(after, " "), true
		}
		from = i
	}
}

// isEventID: lower-case words and digits joined by '-', one '.' between
// the family and the event.
func isEventID(s string) bool {
	dot := strings.IndexByte(s, '.')
	if dot <= 0 || dot == len(s)-1 || strings.IndexByte(s[dot+1:], '.') >= 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Parse reads a Stalwart line (the message of a syslog line, or a whole
// line of Stalwart's log file).
func Parse(msg string) (Event, bool) {
	id, rest, ok := EventID(msg)
	if !ok {
		return Event{}, false
	}
	e := Event{ID: id}
	head := msg[:len(msg)-len(rest)]
	head = strings.TrimSuffix(strings.TrimSuffix(head, " "), " ("+id+")")
	// an RFC 3339 timestamp first (a log file's line), then the level
	if sp := strings.IndexByte(head, ' '); sp > 0 && len(head) > 10 && head[4] == '-' && head[0] >= '0' && head[0] <= '9' {
		head = head[sp+1:]
	}
	for _, l := range levels {
		if strings.HasPrefix(head, l+" ") {
			e.Level, head = l, head[len(l)+1:]
			break
		}
	}
	e.Desc = head
	e.Keys = parseKeys(rest, e.Keys[:0])
	return e, true
}

// parseKeys reads "key = value, key = value" (what it cannot read ends
// the reading: the keys before are kept).
func parseKeys(s string, out []KV) []KV {
	for len(s) > 0 {
		eq := strings.Index(s, " = ")
		if eq <= 0 || !isKey(s[:eq]) {
			return out
		}
		kv := KV{Key: s[:eq]}
		s = s[eq+3:]
		var n int
		kv.Value, kv.Quoted, kv.List, n = parseValue(s)
		out = append(out, kv)
		s = s[n:]
		if !strings.HasPrefix(s, ", ") {
			return out
		}
		s = s[2:]
	}
	return out
}

func isKey(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return len(s) > 0
}

// parseValue reads the value at the start of s and returns it and how many
// bytes of s it took.
func parseValue(s string) (val string, quoted bool, list []string, n int) {
	switch {
	case strings.HasPrefix(s, `"`):
		v, n := parseString(s, false)
		return v, true, nil, n
	case strings.HasPrefix(s, "["):
		i := 1
		for i < len(s) && s[i] != ']' {
			v, _, _, k := parseElement(s[i:])
			list = append(list, v)
			i += k
			if strings.HasPrefix(s[i:], ", ") {
				i += 2
			} else if i < len(s) && s[i] != ']' {
				break
			}
		}
		if i < len(s) && s[i] == ']' {
			i++
		}
		return s[:i], false, list, i
	}
	// a scalar, or a nested event ("Description (id) { ... }"): up to the
	// ", " that starts the next key, past any braces
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth <= 0 && nextKey(s[i:]) {
				return s[:i], false, nil, i
			}
		}
	}
	return s, false, nil, len(s)
}

// parseElement reads one element of a list.
func parseElement(s string) (val string, quoted bool, list []string, n int) {
	if strings.HasPrefix(s, `"`) {
		v, n := parseString(s, true)
		return v, true, nil, n
	}
	i := 0
	for i < len(s) && s[i] != ',' && s[i] != ']' {
		i++
	}
	return s[:i], false, nil, i
}

// nextKey reports whether s (at a ',') goes on with ", key = ".
func nextKey(s string) bool {
	if !strings.HasPrefix(s, ", ") {
		return false
	}
	eq := strings.Index(s[2:], " = ")
	return eq > 0 && isKey(s[2:2+eq])
}

// parseString reads a quoted string at the start of s. Stalwart does not
// escape a '"' inside a string: a quote ends the string only where what
// follows it can follow a value (the end, ", key = ", or in a list ", \""
// or "]").
func parseString(s string, inList bool) (string, int) {
	var b strings.Builder
	escaped := false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			escaped = true
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
			continue
		case c == '"':
			rest := s[i+1:]
			end := rest == "" || nextKey(rest) || (inList && (strings.HasPrefix(rest, "]") || strings.HasPrefix(rest, `, "`)))
			if end {
				if !escaped {
					return s[1:i], i + 1
				}
				return b.String(), i + 1
			}
		}
		b.WriteByte(c)
	}
	// no closing quote: the rest of the line
	if !escaped {
		return s[1:], len(s)
	}
	return b.String(), len(s)
}

// timeSpace returns the index of the first space in line[19:36], where
// the space after an RFC 3339 time is ("...:ss" ends at 19, "...:ss.
// nnnnnnnnn+hh:mm" at 35), or -1: sixteen bytes as two words (a byte
// equal to ' ' found by the carry of a subtraction), not a search of the
// line; a space before 19 fails time.Parse of what precedes the one found.
func timeSpace(line string) int {
	if len(line) < 36 {
		for i := 19; i < len(line); i++ {
			if line[i] == ' ' {
				return i
			}
		}
		return -1
	}
	const ones, highs, spaces = 0x0101010101010101, 0x8080808080808080, 0x2020202020202020
	for off := 19; off < 35; off += 8 {
		x := fastscan.Load64(line[off:]) ^ spaces
		if z := (x - ones) &^ x & highs; z != 0 {
			return off + bits.TrailingZeros64(z)/8
		}
	}
	if line[35] == ' ' {
		return 35
	}
	return -1
}

// ParseLogFile reads a line of Stalwart's own log file (its "log" tracer,
// or its console in a container's log), which has no syslog header:
// "2025-01-17T16:59:03Z INFO Description (family.event) keys": the
// program is "stalwart", the host unknown (empty), the message the whole
// line. A line of another shape is refused in a few byte comparisons (an
// RFC 3339 syslog line has its host, not a level, after the time).
func ParseLogFile(l *syslog.Line, line string, _ *time.Location) bool {
	if len(line) < 26 || line[4] != '-' || line[10] != 'T' || line[0] < '0' || line[0] > '9' {
		return false
	}
	// the space after the time (an RFC 3339 syslog line has the same
	// time; time.Parse checks it), then a level's first letter where a
	// syslog line has its host: most lines of a syslog file end here, in
	// a frame of a few integers (the parse below has a large one)
	sp := timeSpace(line)
	if sp < 20 || sp+1 >= len(line) || !levelStart[line[sp+1]] {
		return false
	}
	return parseLogFile(l, line, sp)
}

// parseLogFile is ParseLogFile past its first checks: sp is where the time
// ends.
func parseLogFile(l *syslog.Line, line string, sp int) bool {
	rest := line[sp+1:]
	level := false
	for _, lv := range levels {
		if strings.HasPrefix(rest, lv) && len(rest) > len(lv) && rest[len(lv)] == ' ' {
			level = true
			break
		}
	}
	if !level {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, line[:sp])
	if err != nil {
		return false
	}
	if _, _, ok := EventID(rest); !ok {
		return false
	}
	*l = syslog.Line{Time: t, Program: "stalwart", Message: line, HasYear: true}
	return true
}
