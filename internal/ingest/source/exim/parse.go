package exim

import (
	"strconv"
	"strings"
)

// The grammar of Exim's log lines (the Exim specification, chapter "Log
// files"): what follows the timestamp (and the [pid]) is a message id and
// a flag ("<=" arrival, "=>" delivery, "->" another address of the same
// delivery, "**" failure, "==" deferral), a message id and a word
// ("Completed", "Frozen", "unfrozen by ...", "removed by ..."), or, without
// a message id, an SMTP session's line (an ACL reject: "H=... F=<...>
// rejected RCPT <...>: reason"). A flag line's fields are "key=value"
// ("H=name (helo) [ip]:port" is one field of several words, "T=" and "C="
// are quoted).

// Kind is what a line is.
type Kind uint8

// Kinds of lines.
const (
	KindIgnored   Kind = iota // nothing for a trace (connections, queue runs, TLS, DKIM...)
	KindUnknown               // a flag line whose address cannot be read
	KindArrival               // <=
	KindDelivery              // => and ->
	KindFail                  // **
	KindDefer                 // ==
	KindCompleted             // Completed
	KindFrozen                // Frozen
	KindThawed                // unfrozen / thawed
	KindRemoved               // removed or cancelled by an administrator
	KindReject                // an ACL's reject (RCPT, MAIL, after DATA)
)

// Record is what one line says.
type Record struct {
	Kind Kind
	ID   string // the message id, "" for a session's line
	// Addr is the address a delivery line is about; Parent the address it
	// was routed from (the last <...> after it), "" when none.
	Addr, Parent string
	// Sender is the envelope sender of an arrival (F= of a reject); ""
	// with HasSender is the null sender <>.
	Sender    string
	HasSender bool
	// The client of an arrival or a reject (H=): its name, HELO, IP.
	ClientName, HELO, ClientIP string
	Protocol                   string // P= of an arrival (smtp, esmtpsa, local...)
	Auth                       string // A= (authenticator:id)
	User                       string // U= (the local user that submitted)
	Size                       int64  // S=
	MessageID                  string // id=
	Subject                    string // T= of an arrival (+subject)
	BounceOf                   string // R= of an arrival: the message a bounce reports on
	Recipients                 []string
	// Deliveries: R=, T=, H= host and IP, C= (the remote's confirmation).
	Router, Transport string
	Host, HostIP      string
	HostPort          int
	Confirmation      string
	// Reason is what follows ": " on a failure, a deferral or a reject.
	Reason string
	// Stage of a reject: "RCPT", "MAIL", "DATA"; Temporary: "temporarily rejected".
	Stage     string
	Temporary bool
}

// Parse reads one line of Exim's (the message after the syslog header,
// with or without Exim's own timestamp and [pid]).
func Parse(msg string) Record {
	body, _ := stripStamp(msg)
	id, rest, ok := splitID(body)
	if !ok {
		if r, ok := parseReject(body); ok {
			return r
		}
		return Record{}
	}
	r := Record{ID: id}
	if len(rest) >= 3 && rest[2] == ' ' {
		switch rest[:2] {
		case "<=":
			r.Kind = KindArrival
			parseArrival(&r, rest[3:])
			return r
		case "=>", "->":
			r.Kind = KindDelivery
			parseAddressLine(&r, rest[3:])
			return r
		case "**":
			r.Kind = KindFail
			parseAddressLine(&r, rest[3:])
			return r
		case "==":
			r.Kind = KindDefer
			parseAddressLine(&r, rest[3:])
			return r
		}
	}
	switch {
	case strings.HasPrefix(rest, "Completed"):
		r.Kind = KindCompleted
	case strings.HasPrefix(rest, "Frozen"):
		r.Kind = KindFrozen
		r.Reason = strings.TrimSpace(rest[len("Frozen"):])
	case strings.HasPrefix(rest, "unfrozen by ") || strings.HasPrefix(rest, "Unfrozen by ") || strings.HasPrefix(rest, "thawed"):
		r.Kind = KindThawed
		r.Reason = rest
	case strings.HasPrefix(rest, "removed by ") || strings.HasPrefix(rest, "cancelled by "):
		r.Kind = KindRemoved
		r.Reason = rest
	default:
		if rr, ok := parseReject(rest); ok {
			rr.ID = id
			return rr
		}
	}
	return r
}

// parseArrival reads "sender fields... [for rcpt...]".
func parseArrival(r *Record, s string) {
	sender, rest := cutWord(s)
	switch {
	case sender == "<>":
		r.HasSender = true
	case sender != "":
		r.Sender, r.HasSender = trimAngle(sender), true
	}
	if i := strings.LastIndex(rest, " for "); i >= 0 && !inQuotes(rest, i) {
		r.Recipients = strings.Fields(rest[i+5:])
		rest = rest[:i]
	} else if strings.HasPrefix(rest, "for ") {
		r.Recipients = strings.Fields(rest[4:])
		rest = ""
	}
	eachField(rest, func(k, v string) {
		switch k {
		case "H":
			r.ClientName, r.HELO, r.ClientIP, _ = parseHostSpec(v)
		case "P":
			r.Protocol = v
		case "A":
			if r.Auth == "" {
				r.Auth = v
			}
		case "U":
			r.User = v
		case "S":
			r.Size, _ = strconv.ParseInt(v, 10, 64)
		case "id":
			r.MessageID = v
		case "T":
			r.Subject = v
		case "R":
			r.BounceOf = v
		}
	})
}

// parseAddressLine reads a delivery, failure or deferral: "addr [<parent>]
// fields...[: reason]".
func parseAddressLine(r *Record, s string) {
	addr, rest := cutWord(s)
	if strings.HasSuffix(addr, ":") && !strings.HasPrefix(addr, "|") {
		// "** x@y: Unrouteable address"
		addr, rest = addr[:len(addr)-1], ": "+rest
	}
	r.Addr = addr
	for strings.HasPrefix(rest, "<") {
		p, more := cutWord(rest)
		reason := strings.HasSuffix(p, ">:")
		p = strings.TrimSuffix(p, ":")
		if !strings.HasSuffix(p, ">") {
			break
		}
		r.Parent = p[1 : len(p)-1]
		rest = more
		if reason {
			rest = ": " + rest
			break
		}
	}
	if i := reasonIndex(rest); i >= 0 {
		r.Reason = rest[i+2:]
		rest = rest[:i]
	}
	eachField(rest, func(k, v string) {
		switch k {
		case "R":
			r.Router = v
		case "T":
			r.Transport = v
		case "H":
			r.Host, _, r.HostIP, r.HostPort = parseHostSpec(v)
		case "C":
			r.Confirmation = v
		}
	})
	if r.Addr == "" {
		r.Kind = KindUnknown
	}
}

// reasonIndex is the index of the ": " that starts a line's reason (outside
// a quoted field), or -1.
func reasonIndex(s string) int {
	q := false
	for i := 0; i+1 < len(s); i++ {
		switch s[i] {
		case '\\':
			if q {
				i++
			}
		case '"':
			q = !q
		case ':':
			if !q && s[i+1] == ' ' {
				return i
			}
		}
	}
	return -1
}

// parseReject reads an ACL's reject: "[fields...] [temporarily ]rejected
// RCPT <addr>: reason" (or "MAIL <addr>", "after DATA").
func parseReject(s string) (Record, bool) {
	i := strings.Index(s, "rejected ")
	if i < 0 || (i > 0 && s[i-1] != ' ') {
		return Record{}, false
	}
	r := Record{Kind: KindReject}
	head, tail := s[:i], s[i+len("rejected "):]
	if h, ok := strings.CutSuffix(head, "temporarily "); ok {
		head, r.Temporary = h, true
	}
	switch {
	case strings.HasPrefix(tail, "RCPT "):
		r.Stage = "RCPT"
		a, rest := cutWord(tail[5:])
		a = strings.TrimSuffix(a, ":")
		r.Addr = trimAngle(a)
		tail = rest
	case strings.HasPrefix(tail, "MAIL "):
		r.Stage = "MAIL"
		a, rest := cutWord(tail[5:])
		a = strings.TrimSuffix(a, ":")
		if !r.HasSender {
			r.Sender, r.HasSender = trimAngle(a), true
		}
		tail = rest
	case strings.HasPrefix(tail, "after DATA"):
		r.Stage = "DATA"
		tail = tail[len("after DATA"):]
	default:
		return Record{}, false // a connection, HELO... : no message
	}
	tail = strings.TrimPrefix(strings.TrimPrefix(tail, ":"), " ")
	r.Reason = tail
	eachField(head, func(k, v string) {
		switch k {
		case "H":
			r.ClientName, r.HELO, r.ClientIP, _ = parseHostSpec(v)
		case "F":
			r.Sender, r.HasSender = trimAngle(v), true
		case "A":
			r.Auth = v
		case "U":
			r.User = v
		}
	})
	return r, true
}

// eachField calls f for each "key=value" of s: a quoted value ("...",
// Exim's escapes undone), H= and I= (a host: "name (helo) [ip]:port", up
// to its bracketed address), or a word. Words that are not key=value are
// skipped.
func eachField(s string, f func(k, v string)) {
	for len(s) > 0 {
		for len(s) > 0 && s[0] == ' ' {
			s = s[1:]
		}
		if s == "" {
			return
		}
		eq := -1
		for j := 0; j < len(s) && j < 12; j++ {
			c := s[j]
			if c == '=' {
				eq = j
				break
			}
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				break
			}
		}
		if eq <= 0 {
			_, s = cutWord(s)
			continue
		}
		k, rest := s[:eq], s[eq+1:]
		var v string
		switch {
		case strings.HasPrefix(rest, `"`):
			v, s = unquote(rest)
		case k == "H" || k == "I":
			n := hostSpecLen(rest)
			v, s = rest[:n], rest[n:]
		default:
			v, s = cutWord(rest)
		}
		f(k, v)
	}
}

// hostSpecLen is the length of a host field's value at the start of s:
// words up to and including the one in brackets ("[ip]" or "[ip]:port"),
// or one word when none is bracketed before the next key=value.
func hostSpecLen(s string) int {
	i := 0
	for i < len(s) {
		j := strings.IndexByte(s[i:], ' ')
		w := s[i:]
		if j >= 0 {
			w = s[i : i+j]
		}
		if strings.HasPrefix(w, "[") {
			return i + len(w)
		}
		if strings.HasPrefix(w, "(") && !strings.HasSuffix(w, ")") {
			// a HELO with spaces: up to its ")"
			k := strings.IndexByte(s[i:], ')')
			if k < 0 {
				return len(s)
			}
			i += k + 1
			if i < len(s) && s[i] == ' ' {
				i++
			}
			continue
		}
		if j < 0 {
			return len(s)
		}
		next := s[i+j+1:]
		if !strings.HasPrefix(next, "(") && !strings.HasPrefix(next, "[") {
			return i + j
		}
		i += j + 1
	}
	return len(s)
}

// parseHostSpec splits "name (helo) [ip]:port" (each part optional).
func parseHostSpec(v string) (name, helo, ip string, port int) {
	for _, w := range splitHost(v) {
		switch {
		case strings.HasPrefix(w, "("):
			helo = strings.TrimSuffix(strings.TrimPrefix(w, "("), ")")
		case strings.HasPrefix(w, "["):
			end := strings.LastIndexByte(w, ']')
			if end < 0 {
				continue
			}
			ip = w[1:end]
			if p, ok := strings.CutPrefix(w[end+1:], ":"); ok {
				port, _ = strconv.Atoi(p)
			} else if p, ok := strings.CutPrefix(w[end+1:], "."); ok {
				port, _ = strconv.Atoi(p)
			}
		default:
			if name == "" {
				name = w
			}
		}
	}
	if strings.HasPrefix(ip, "IPv6:") {
		ip = ip[5:]
	}
	return name, helo, ip, port
}

func splitHost(v string) []string {
	var out []string
	for v != "" {
		if v[0] == ' ' {
			v = v[1:]
			continue
		}
		if v[0] == '(' {
			k := strings.IndexByte(v, ')')
			if k < 0 {
				k = len(v) - 1
			}
			out = append(out, v[:k+1])
			v = v[k+1:]
			continue
		}
		w, rest := cutWord(v)
		out = append(out, w)
		v = rest
	}
	return out
}

// unquote reads a quoted value at the start of s (s[0] is '"'): its text
// with Exim's escapes (\" \\ \n \t and octal \ooo) undone, and the rest
// after it.
func unquote(s string) (string, string) {
	var b []byte
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			if b == nil {
				return s[1:i], s[i+1:]
			}
			return string(b), s[i+1:]
		case c == '\\' && i+1 < len(s):
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[1:i]...)
			}
			d := s[i+1]
			switch {
			case d >= '0' && d <= '7' && i+3 < len(s) && isOct(s[i+2]) && isOct(s[i+3]):
				b = append(b, (d-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
				i += 4
				continue
			case d == 'n':
				b = append(b, '\n')
			case d == 't':
				b = append(b, '\t')
			case d == 'r':
				b = append(b, '\r')
			default:
				b = append(b, d)
			}
			i += 2
			continue
		}
		if b != nil {
			b = append(b, c)
		}
		i++
	}
	// no closing quote: all of it
	if b == nil {
		return s[1:], ""
	}
	return string(b), ""
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

// inQuotes reports whether s[i] is inside a quoted value.
func inQuotes(s string, i int) bool {
	q := false
	for j := 0; j < i; j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			q = !q
		}
	}
	return q
}

func cutWord(s string) (string, string) {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func trimAngle(s string) string {
	s = strings.TrimSuffix(s, ",")
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		return s[1 : len(s)-1]
	}
	return s
}

// response returns the SMTP reply inside a failure's or deferral's reason
// ("SMTP error from remote mail server after RCPT TO:<x>: 550 5.1.1 ..."
// gives "550 5.1.1 ..."), or "".
func response(reason string) string {
	for i := 0; ; {
		j := strings.Index(reason[i:], ": ")
		if j < 0 {
			break
		}
		i += j + 2
		if isReply(reason[i:]) {
			return reason[i:]
		}
	}
	if isReply(reason) {
		return reason
	}
	return ""
}

// isReply reports whether s starts with an SMTP reply code ("550 ", "451-").
func isReply(s string) bool {
	return len(s) >= 4 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' && (s[3] == ' ' || s[3] == '-')
}

// enhancedCode returns the RFC 3463 code at the start of s ("5.1.1 ..."),
// or "".
func enhancedCode(s string) string {
	w, _ := cutWord(s)
	parts := strings.Split(w, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return ""
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return ""
			}
		}
	}
	return w
}
