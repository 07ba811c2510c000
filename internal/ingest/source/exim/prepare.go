package exim

import (
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// Preparation: what a line is worth, from the line alone
// (source.Source.Prepare), and the shape of a line of Exim's own log file
// (ParseMainlog).

// Prepare claims the lines of Exim's syslog program ("exim", "exim4") and
// of Exim's own log file (ParseMainlog names their program "exim"), and
// says which carry nothing for a trace: a line with a message id but no
// flag or word this source reads (DKIM, "SMTP connection outbound",
// "Spool file is locked"...), and a line without one that is not an ACL's
// reject (connections, queue runs, TLS): a few byte comparisons.
func (c *Source) Prepare(program, msg string) (source.Verdict, bool) {
	if !isExim(program) {
		return source.Verdict{}, false
	}
	body, _ := stripStamp(msg)
	v := source.Verdict{Daemon: "exim"}
	if _, rest, ok := splitID(body); ok {
		v.Ignore = !flagged(rest)
	} else {
		v.Ignore = !strings.Contains(body, "rejected ")
	}
	return v, true
}

// isExim reports whether a syslog program is Exim's: "exim", "exim4",
// "exim4-daemon"...
func isExim(program string) bool {
	return strings.HasPrefix(program, "exim") && (len(program) == 4 || program[4] == '4' || program[4] == '-' || program[4] == '/')
}

// flagged reports whether what follows a message id is a line this source
// reads.
func flagged(rest string) bool {
	if len(rest) >= 3 && rest[2] == ' ' {
		switch rest[:2] {
		case "<=", "=>", "->", "**", "==":
			return true
		}
	}
	switch rest[0] {
	case 'C':
		return strings.HasPrefix(rest, "Completed")
	case 'F':
		return strings.HasPrefix(rest, "Frozen")
	case 'u', 'U':
		return strings.HasPrefix(rest[1:], "nfrozen by ")
	case 't':
		return strings.HasPrefix(rest, "thawed")
	case 'r':
		return strings.HasPrefix(rest, "removed by ")
	case 'c':
		return strings.HasPrefix(rest, "cancelled by ")
	case 'H':
		return strings.Contains(rest, "rejected ")
	}
	return false
}

// stripStamp removes Exim's own timestamp ("2026-12-05 10:00:00",
// optionally ".123" and a zone " +0100", then a space) and "[pid] " (or
// "[pid/n] ") from the start of msg, and returns what is left and whether
// there was a timestamp.
func stripStamp(msg string) (string, bool) {
	n, ok := stampLen(msg)
	if !ok {
		return msg, false
	}
	return msg[n:], true
}

// stampLen is the length of Exim's timestamp and [pid] at the start of s,
// with the space after each.
func stampLen(s string) (int, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || !digits(s[0:4]) || !digits(s[11:13]) {
		return 0, false
	}
	i := 19
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i+6 < len(s) && s[i] == ' ' && (s[i+1] == '+' || s[i+1] == '-') && digits(s[i+2:i+6]) {
		i += 6
	}
	if i >= len(s) || s[i] != ' ' {
		return 0, false
	}
	i++
	if i < len(s) && s[i] == '[' {
		j := i + 1
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '/') {
			j++
		}
		if j > i+1 && j+1 < len(s) && s[j] == ']' && s[j+1] == ' ' {
			i = j + 2
		}
	}
	return i, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// splitID splits "ID rest" where ID is an Exim message id.
func splitID(s string) (id, rest string, ok bool) {
	for _, n := range [2]int{16, 23} {
		if len(s) > n+1 && s[n] == ' ' && isID(s[:n]) {
			return s[:n], s[n+1:], true
		}
	}
	return "", "", false
}

// isID reports whether s is an Exim message id: "1ajLoq-0001wC-Pk" (6, 6
// and 2 base-62 digits, before 4.97) or "1rR4oL-00000000GKS-2H5i" (6, 11
// and 4, from 4.97: a longer pid and sub-second part).
func isID(s string) bool {
	var a, b int
	switch len(s) {
	case 16:
		a, b = 6, 13
	case 23:
		a, b = 6, 18
	default:
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == a || i == b {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// ParseMainlog reads a line of Exim's own log file (log_file_path, not
// syslog: "2026-12-05 10:00:00 [1234] 1ajLoq-0001wC-Pk <= ...") into l,
// by its shape, and reports whether it is one: Exim's timestamp (a date, a
// space, a time; the zone only with log_timezone, so loc places it), then
// a message id, a [pid] or an SMTP session's "H=". Such a line has no host
// (l.Host is ""), its program is "exim" and its message what follows the
// timestamp. A syslog line with an RFC 3339 timestamp ("...T10:00:00")
// never has this shape.
func ParseMainlog(l *syslog.Line, line string, loc *time.Location) bool {
	n, ok := stampLen(line)
	if !ok {
		return false
	}
	rest := line[n:]
	pid := 0
	if line[n-2] == ']' {
		// the [pid] stampLen took in
		j := strings.LastIndexByte(line[:n-2], '[')
		for _, c := range line[j+1 : n-2] {
			if c == '/' {
				break
			}
			pid = pid*10 + int(c-'0')
		}
	}
	if pid == 0 {
		if _, _, ok := splitID(rest); !ok && !strings.HasPrefix(rest, "H=") {
			return false
		}
	}
	t, ok := stampTime(line, loc)
	if !ok {
		return false
	}
	*l = syslog.Line{Time: t, Program: "exim", PID: pid, Message: rest, HasYear: true}
	return true
}

// stampTime reads the timestamp at the start of s (stampLen's).
func stampTime(s string, loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.UTC
	}
	end := 19
	if s[end] == '.' {
		end++
		for end < len(s) && s[end] >= '0' && s[end] <= '9' {
			end++
		}
	}
	layout := "2006-01-02 15:04:05"
	if end > 19 {
		layout += "." + strings.Repeat("0", end-20)
	}
	if end+6 < len(s) && s[end] == ' ' && (s[end+1] == '+' || s[end+1] == '-') && digits(s[end+2:end+6]) {
		t, err := time.Parse(layout+" -0700", s[:end+6])
		return t, err == nil
	}
	t, err := time.ParseInLocation(layout, s[:end], loc)
	return t, err == nil
}
