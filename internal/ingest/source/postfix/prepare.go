package postfix

import (
	"strings"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
)

// Preparation: what a line is worth, from the line alone, ahead of the
// state machine and possibly on another goroutine (source.Source.Prepare).

// Flags of a Verdict, for Consume.
const (
	flagDisconnect = 1 << iota // smtpd "disconnect from": the session ends
	flagData                   // ... and it had sent DATA or BDAT
)

// Prepare claims the lines of Postfix's daemons, amavis and
// pmg-smtp-filter, and says which carry nothing for a trace: a Postfix
// message that is neither NOQUEUE nor proxy- nor "QID: ..." (connect,
// disconnect, postscreen, TLS, statistics: most of a server's lines),
// known by a few byte comparisons. The end of an smtpd session is kept all
// the same: it decides whether a transaction was abandoned.
func (c *Source) Prepare(program, msg string) (source.Verdict, bool) {
	daemon, filter, ok := daemonOf(program)
	if !ok {
		return source.Verdict{}, false
	}
	if filter {
		return source.Verdict{Daemon: daemon}, true
	}
	v := source.Verdict{Daemon: daemon, Ignore: ignorable(msg)}
	if daemon == "smtpd" && strings.HasPrefix(msg, "disconnect from ") {
		v.Flags = flagDisconnect
		if sentData(msg) {
			v.Flags |= flagData
		}
		v.Keep = true
	}
	return v, true
}

// daemonOf returns the daemon name of a program ("smtpd" for
// "postfix/smtpd", "amavis" for "amavisd"), whether it is a content
// filter's, and whether the program is one this source reads.
func daemonOf(program string) (daemon string, filter, ok bool) {
	// strings.HasPrefix(program, "postfix") and the last '/' (after it: a
	// prefix has none), without the calls: every line of a Postfix log
	// comes here, the filters' after
	if len(program) < 8 || program[:7] != "postfix" {
		switch program {
		case "amavis", "amavisd", "amavisd-new":
			return "amavis", true, true
		case "pmg-smtp-filter":
			return "pmg-smtp-filter", true, true
		}
		return "", false, false
	}
	// the daemon follows the last '/': nearly always "postfix/" is the
	// only one ("postfix/submission/smtpd" has two)
	i := 7
	if program[7] != '/' {
		i = strings.IndexByte(program[8:], '/')
		if i < 0 {
			return "", false, false
		}
		i += 8
	}
	for {
		j := strings.IndexByte(program[i+1:], '/')
		if j < 0 {
			return program[i+1:], false, true
		}
		i += 1 + j
	}
}

// isQueueID reports whether s looks like a Postfix queue id: short (hex,
// upper case) or long (base 52, with the 'z' separator inside).
func isQueueID(s string) bool {
	if len(s) < 5 || len(s) > 20 {
		return false
	}
	hex := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
			hex = false
		default:
			return false
		}
	}
	if hex {
		return true
	}
	return len(s) >= 10 && strings.IndexByte(s[1:], 'z') >= 0
}

// splitQueueID splits "QID: rest".
func splitQueueID(msg string) (qid, rest string, ok bool) {
	// A queue id is letters and digits only, so it ends at the first
	// ": ", and the first ':' of the line can only end one if it is
	// within the longest queue id: most lines have none there (found in
	// a search of 22 bytes), and only a line that has one is read byte
	// by byte.
	head := msg
	if len(head) > 22 {
		head = head[:22]
	}
	i := strings.IndexByte(head, ':')
	if i < 0 || i+1 >= len(msg) || msg[i+1] != ' ' {
		return "", "", false
	}
	for k := 0; k < i; k++ {
		if !alnum[msg[k]] {
			return "", "", false
		}
	}
	if !isQueueID(msg[:i]) {
		return "", "", false
	}
	return msg[:i], msg[i+2:], true
}

// alnum marks the bytes of a queue id: ASCII letters and digits.
var alnum = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c], t[c+'a'-'A'] = true, true
	}
	return t
}()

// ignorable reports, by a few byte comparisons, that ParseMessage of a
// Postfix daemon's msg is KindIgnored (connect, disconnect, postscreen,
// TLS, statistics: most of a server's lines): a message that is neither
// NOQUEUE nor proxy- nor "QID: ...". (A content filter's line is never
// ignorable.)
func ignorable(msg string) bool {
	if strings.HasPrefix(msg, "NOQUEUE: ") || strings.HasPrefix(msg, "proxy-") {
		return false
	}
	_, _, ok := splitQueueID(msg)
	return !ok
}

// sentData is strings.Contains(msg, " data=") || strings.Contains(msg,
// " bdat="), in one pass over the '=' of the message.
func sentData(msg string) bool {
	for i := 0; ; {
		j := strings.IndexByte(msg[i:], '=')
		if j < 0 {
			return false
		}
		i += j
		if i >= 5 && (msg[i-5:i] == " data" || msg[i-5:i] == " bdat") {
			return true
		}
		i++
	}
}
