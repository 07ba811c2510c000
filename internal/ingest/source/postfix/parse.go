package postfix

import (
	"net/netip"
	"strconv"
	"strings"
)

// Kind says what a Postfix (or content filter) log message is about.
type Kind int

// Kinds of log message the source understands.
const (
	KindUnknown   Kind = iota // not understood
	KindIgnored               // understood, nothing to trace (connect, TLS, statistics...)
	KindClient                // smtpd  QID: client=name[ip][, orig_client=...][, sasl_username=...]
	KindPickup                // pickup QID: uid=N from=<x>
	KindMessageID             // cleanup QID: message-id=<x>
	KindQueued                // qmgr   QID: from=<x>, size=N, nrcpt=N (queue active)
	KindDelivery              // smtp/lmtp/local/virtual/pipe/error/discard QID: to=<x>, ... status=S (text)
	KindExpired               // qmgr   QID: from=<x>, status=expired, returned to sender
	KindRemoved               // qmgr   QID: removed
	KindNotify                // bounce QID: sender non-delivery notification: NEWID
	KindReject                // smtpd/postscreen NOQUEUE|QID: reject: STAGE from name[ip]: CODE DSN text; from=<> to=<>
	KindAction                // cleanup/smtpd QID: milter-reject|milter-hold|milter-discard|reject|hold|discard|redirect: ...
	KindSubject               // cleanup QID: warning|info: header Subject: S from ...
	KindProxy                 // smtpd proxy-accept|proxy-reject: END-OF-MESSAGE: CODE DSN text (FILTERID); from=<> to=<>
	KindSession               // smtpd NOQUEUE: client=name[ip] (a before-queue filter session)
	KindFilter                // pmg-smtp-filter FILTERID: ...
	KindAmavis                // amavis (ID) Passed|Blocked CATEGORY {flags}, ...
)

// Record is one parsed log message body.
type Record struct {
	Kind    Kind
	Daemon  string // smtpd, cleanup, qmgr, smtp, ... (the last part of the program name)
	QueueID string

	ClientName, ClientIP         string // client=name[ip], or the client of a reject
	OrigClientName, OrigClientIP string // orig_client= (PMG re-injection)
	SASLUsername                 string

	From, To, OrigTo string // addresses without angle brackets (from=<> is "")
	HasFrom          bool
	Relay            string // relay= as logged
	RelayIP          string
	RelayPort        int
	DSN              string
	Status           string // sent, deferred, bounced, expired, ...
	Response         string // the text in parentheses after status=, or a reject's text
	Size             int64
	NRcpt            int
	MessageID        string
	UID              string

	NewID      string // the new queue id: bounce notice, "queued as", PMG "(NEWID)", amavis queued_as
	NotifyKind string // "sender non-delivery notification", ...
	Action     string // reject, hold, discard, milter-reject, ..., proxy-accept, proxy-reject
	Stage      string // RCPT, DATA, END-OF-MESSAGE, header, body, ...
	Reason     string // human-readable reason (reject text, rule)
	Subject    string

	FilterID string // PMG filter id, amavis id
	Verdict  string // PMG: accept, block, quarantine; amavis: Passed, Blocked
	Category string // amavis: CLEAN, SPAM, BANNED, ...
	Flags    string // amavis {...}
	Rcpts    []string
}

// ParseMessage parses the message part of a syslog line logged by daemon
// (the name daemonOf returns).
func ParseMessage(daemon, msg string) Record {
	r := Record{Daemon: daemon}
	switch daemon {
	case "amavis":
		parseAmavis(&r, msg)
		return r
	case "pmg-smtp-filter":
		parsePMG(&r, msg)
		return r
	}
	if rest, ok := strings.CutPrefix(msg, "NOQUEUE: "); ok {
		switch {
		case strings.HasPrefix(rest, "client="):
			r.Kind = KindSession
			kv := parseKV(rest)
			r.ClientName, r.ClientIP = splitNameAddr(kv.get("client"))
		default:
			parseAction(&r, rest)
		}
		return r
	}
	if rest, ok := strings.CutPrefix(msg, "proxy-"); ok {
		parseProxy(&r, "proxy-"+rest)
		return r
	}
	qid, rest, ok := splitQueueID(msg)
	if !ok {
		r.Kind = KindIgnored
		return r
	}
	r.QueueID = qid
	switch {
	case strings.HasPrefix(rest, "client="):
		r.Kind = KindClient
		kv := parseKV(rest)
		r.ClientName, r.ClientIP = splitNameAddr(kv.get("client"))
		r.OrigClientName, r.OrigClientIP = splitNameAddr(kv.get("orig_client"))
		r.SASLUsername = kv.get("sasl_username")
	case strings.HasPrefix(rest, "uid="):
		r.Kind = KindPickup
		kv := parseKV(rest)
		r.UID = kv.get("uid")
		r.From, r.HasFrom = addr(&kv, "from")
	case strings.HasPrefix(rest, "message-id="):
		r.Kind = KindMessageID
		r.MessageID = strings.TrimSpace(strings.TrimPrefix(rest, "message-id="))
	case rest == "removed":
		r.Kind = KindRemoved
	case strings.HasPrefix(rest, "to=") && strings.Contains(rest, "status="):
		parseDelivery(&r, rest)
	case strings.HasPrefix(rest, "from=") && strings.Contains(rest, "status=expired"):
		r.Kind = KindExpired
		kv := parseKV(rest)
		r.From, r.HasFrom = addr(&kv, "from")
		r.Status = "expired"
		r.Response = rest
	case strings.HasPrefix(rest, "from=") && strings.Contains(rest, "nrcpt="):
		r.Kind = KindQueued
		kv := parseKV(rest)
		r.From, r.HasFrom = addr(&kv, "from")
		r.Size, _ = strconv.ParseInt(kv.get("size"), 10, 64)
		r.NRcpt, _ = strconv.Atoi(kv.get("nrcpt"))
	case strings.Contains(rest, " notification: "):
		i := strings.Index(rest, " notification: ")
		id := strings.TrimSpace(rest[i+len(" notification: "):])
		if isQueueID(id) {
			r.Kind = KindNotify
			r.NotifyKind = rest[:i+len(" notification")]
			r.NewID = id
		}
	case strings.HasPrefix(rest, "warning: header Subject: "), strings.HasPrefix(rest, "info: header Subject: "):
		r.Kind = KindSubject
		s := rest[strings.Index(rest, "Subject: ")+len("Subject: "):]
		if i := strings.LastIndex(s, "; from="); i >= 0 {
			s = s[:i]
		}
		if i := strings.LastIndex(s, " from "); i >= 0 {
			s = s[:i]
		}
		r.Subject = strings.TrimSpace(s)
	case rest == "placed on hold":
		r.Kind = KindAction
		r.Action = "hold"
		r.Reason = "placed on hold by postsuper"
	case strings.HasPrefix(rest, "warning: "), strings.HasPrefix(rest, "info: "),
		rest == "requeued", rest == "released from hold", strings.HasPrefix(rest, "SASL authentication failed"),
		strings.HasPrefix(rest, "filter: "), strings.HasPrefix(rest, "replace: "),
		strings.HasPrefix(rest, "prepend: "), strings.HasPrefix(rest, "host "),
		strings.HasPrefix(rest, "lost connection"), strings.HasPrefix(rest, "conversation with"),
		strings.HasPrefix(rest, "enabling PIX"), strings.HasPrefix(rest, "Cannot start TLS"),
		strings.HasPrefix(rest, "skipped, still being delivered"):
		r.Kind = KindIgnored
	default:
		parseAction(&r, rest)
	}
	return r
}

var actions = []string{
	"milter-reject", "milter-hold", "milter-discard", "milter-header-redirect", "milter-redirect",
	"reject", "hold", "discard", "redirect",
}

// parseAction reads "ACTION: STAGE from name[ip]: text; from=<> to=<> ..."
// (smtpd access checks, cleanup header/body checks and milters).
func parseAction(r *Record, rest string) {
	var act string
	for _, a := range actions {
		if strings.HasPrefix(rest, a+": ") {
			act = a
			break
		}
	}
	if act == "" {
		r.Kind = KindUnknown
		if r.QueueID == "" {
			r.Kind = KindIgnored // NOQUEUE: filter:, warning:, lost connection...
		}
		return
	}
	r.Action = act
	body := rest[len(act)+2:]
	kvStart := strings.LastIndex(body, "; from=")
	if kvStart < 0 {
		kvStart = strings.LastIndex(body, "; to=")
	}
	var text, tail string
	if kvStart >= 0 {
		text, tail = body[:kvStart], body[kvStart+2:]
	} else {
		text = body
	}
	kv := parseKV(tail)
	r.From, r.HasFrom = addr(&kv, "from")
	r.To, _ = addr(&kv, "to")
	// text: "STAGE from name[ip]: CODE DSN reason" or "header X: v from name[ip]"
	if sp := strings.IndexByte(text, ' '); sp > 0 {
		r.Stage = text[:sp]
	}
	reason := text
	dsnText := "" // where the DSN is, when not at the start of the reason
	if i := strings.Index(text, " from "); i >= 0 {
		after := text[i+len(" from "):]
		if j := strings.Index(after, ": "); j >= 0 && (r.Stage == "RCPT" || r.Stage == "DATA" || r.Stage == "END-OF-MESSAGE" || r.Stage == "CONNECT" || r.Stage == "MAIL" || r.Stage == "HELO" || r.Stage == "EHLO" || r.Stage == "VRFY" || r.Stage == "ETRN" || r.Stage == "BDAT") {
			if strings.HasPrefix(after, "[") { // postscreen: [ip]:port
				if k := strings.IndexByte(after, ']'); k > 0 {
					r.ClientIP = validIP(after[1:k])
				}
			} else {
				r.ClientName, r.ClientIP = splitNameAddr(after[:j])
			}
			reason = after[j+2:]
		} else if r.Stage == "header" || r.Stage == "body" {
			reason = text
			if len(tail) > 0 {
				// cleanup: "...; from=<> to=<> proto=ESMTP helo=<x>: optional text"
				if k := strings.Index(tail, ">: "); k >= 0 {
					reason = text + ": " + tail[k+3:]
					dsnText = tail[k+3:]
				}
			}
			// "header Subject: S from name[ip]": the rule that matched the
			// subject stopped header_checks there, so this is the only
			// line that names it (no INFO or WARN line follows).
			if s, ok := strings.CutPrefix(text, "header Subject: "); ok {
				if k := strings.LastIndex(s, " from "); k >= 0 {
					s = s[:k]
				}
				r.Subject = strings.TrimSpace(s)
			}
		}
	}
	// postscreen reject: "RCPT from [ip]:port: 550 5.7.1 ..."
	if r.Stage == "RCPT" && r.ClientIP == "" {
		if i := strings.Index(text, " from ["); i >= 0 {
			after := text[i+len(" from ["):]
			if k := strings.IndexByte(after, ']'); k > 0 {
				r.ClientIP = validIP(after[:k])
				if j := strings.Index(after, ": "); j >= 0 {
					reason = after[j+2:]
				}
			}
		}
	}
	r.Reason = strings.TrimSpace(reason)
	if dsnText != "" {
		r.DSN = findDSN(dsnText)
	} else {
		r.DSN = findDSN(r.Reason)
	}
	if act == "reject" && r.Stage != "header" && r.Stage != "body" {
		r.Kind = KindReject
	} else {
		r.Kind = KindAction
	}
	if strings.HasPrefix(act, "milter-") && strings.HasSuffix(act, "redirect") || act == "redirect" {
		if k := strings.LastIndex(body, ": "); k >= 0 && k > kvStart {
			r.NewID = "" // redirect target is an address, kept in Reason
			r.Reason = strings.TrimSpace(body[k+2:])
		}
	}
}

// findDSN returns the first enhanced status code (x.y.z) in s.
func findDSN(s string) string {
	for i := 0; i+4 < len(s) && i < 64; i++ {
		c := s[i]
		if (c == '2' || c == '4' || c == '5') && s[i+1] == '.' && (i == 0 || s[i-1] == ' ') {
			j := i + 2
			n := 0
			for j < len(s) && s[j] >= '0' && s[j] <= '9' && n < 3 {
				j++
				n++
			}
			if n == 0 || j >= len(s) || s[j] != '.' {
				continue
			}
			k := j + 1
			m := 0
			for k < len(s) && s[k] >= '0' && s[k] <= '9' && m < 3 {
				k++
				m++
			}
			if m == 0 || (k < len(s) && s[k] != ' ' && s[k] != ';' && s[k] != ',') {
				continue
			}
			return s[i:k]
		}
	}
	return ""
}

func parseProxy(r *Record, msg string) {
	i := strings.Index(msg, ": ")
	if i < 0 {
		r.Kind = KindUnknown
		return
	}
	r.Kind = KindProxy
	r.Action = msg[:i]
	rest := msg[i+2:]
	if j := strings.Index(rest, ": "); j >= 0 {
		r.Stage = rest[:j]
		rest = rest[j+2:]
	}
	text, tail := rest, ""
	if k := strings.LastIndex(rest, "; from="); k >= 0 {
		text, tail = rest[:k], rest[k+2:]
	}
	r.Response = text
	r.DSN = findDSN(text)
	if a := strings.LastIndexByte(text, '('); a >= 0 {
		if b := strings.IndexByte(text[a:], ')'); b > 0 {
			r.FilterID = text[a+1 : a+b]
		}
	}
	kv := parseKV(tail)
	r.From, r.HasFrom = addr(&kv, "from")
	r.To, _ = addr(&kv, "to")
}

func parseDelivery(r *Record, rest string) {
	r.Kind = KindDelivery
	si := strings.Index(rest, "status=")
	head, st := rest[:si], rest[si+len("status="):]
	kv := parseKV(head)
	r.To, _ = addr(&kv, "to")
	r.OrigTo, _ = addr(&kv, "orig_to")
	r.Relay = kv.get("relay")
	r.DSN = kv.get("dsn")
	name, ip, port := splitRelay(r.Relay)
	_ = name
	r.RelayIP, r.RelayPort = ip, port
	if sp := strings.IndexByte(st, ' '); sp >= 0 {
		r.Status = st[:sp]
		resp := strings.TrimSpace(st[sp+1:])
		if strings.HasPrefix(resp, "(") && strings.HasSuffix(resp, ")") {
			resp = resp[1 : len(resp)-1]
		}
		r.Response = resp
	} else {
		r.Status = st
	}
	r.Status = strings.TrimSuffix(r.Status, ",")
	if i := strings.LastIndex(r.Response, "queued as "); i >= 0 {
		id := strings.TrimRight(r.Response[i+len("queued as "):], ") ")
		if sp := strings.IndexAny(id, " ,;)"); sp >= 0 {
			id = id[:sp]
		}
		if isQueueID(id) {
			r.NewID = id
		}
	}
	// PMG: "250 2.5.0 OK (FILTERID)", "250 2.7.0 BLOCKED (FILTERID)"
	if a := strings.LastIndexByte(r.Response, '('); a >= 0 {
		if b := strings.IndexByte(r.Response[a:], ')'); b > 0 && isPMGID(r.Response[a+1:a+b]) {
			r.FilterID = r.Response[a+1 : a+b]
		}
	}
	// amavis: "250 2.7.0 Ok, discarded, id=351462-17 - BANNED: ..."
	if i := strings.Index(r.Response, "id="); i >= 0 && r.FilterID == "" {
		id := r.Response[i+3:]
		if sp := strings.IndexAny(id, " ,;"); sp >= 0 {
			id = id[:sp]
		}
		r.FilterID = id
	}
}

// parseAmavis reads amavisd-new's main log line:
// (ID) Passed|Blocked CATEGORY {flags}, ... <from> -> <to1>,<to2>, ..., Queue-ID: Q, Message-ID: <m>, ..., queued_as: N, Subject: "s", ...
func parseAmavis(r *Record, msg string) {
	r.Kind = KindIgnored
	if !strings.HasPrefix(msg, "(") {
		return
	}
	e := strings.IndexByte(msg, ')')
	if e < 0 {
		return
	}
	r.FilterID = msg[1:e]
	rest := strings.TrimSpace(msg[e+1:])
	verdict, after, _ := strings.Cut(rest, " ")
	if verdict != "Passed" && verdict != "Blocked" {
		return
	}
	r.Kind = KindAmavis
	r.Verdict = verdict
	r.Category, _, _ = strings.Cut(after, " ")
	r.Category = strings.TrimSuffix(r.Category, ",")
	if a := strings.IndexByte(after, '{'); a >= 0 {
		if b := strings.IndexByte(after[a:], '}'); b > 0 {
			r.Flags = after[a+1 : a+b]
		}
	}
	if i := strings.Index(after, " -> "); i >= 0 {
		if j := strings.LastIndexByte(after[:i], '<'); j >= 0 {
			r.From = strings.Trim(after[j:i], "<>")
			r.HasFrom = true
		}
		list := after[i+4:]
		if k := strings.Index(list, ", "); k >= 0 {
			list = list[:k]
		}
		for _, a := range strings.Split(list, ",") {
			a = strings.Trim(strings.TrimSpace(a), "<>")
			if a != "" {
				r.Rcpts = append(r.Rcpts, a)
			}
		}
	}
	field := func(name string) string {
		i := strings.Index(after, ", "+name+": ")
		if i < 0 {
			return ""
		}
		v := after[i+len(name)+4:]
		if k := strings.Index(v, ", "); k >= 0 {
			v = v[:k]
		}
		return v
	}
	if q := field("Queue-ID"); isQueueID(q) {
		r.QueueID = q
	}
	r.MessageID = field("Message-ID")
	if q := field("queued_as"); q != "" {
		if k := strings.IndexByte(q, '/'); k >= 0 {
			q = q[:k]
		}
		if isQueueID(q) {
			r.NewID = q
		}
	}
	if i := strings.Index(after, `, Subject: "`); i >= 0 {
		s := after[i+len(`, Subject: "`):]
		if k := strings.Index(s, `", `); k >= 0 {
			s = s[:k]
		} else {
			s = strings.TrimSuffix(s, `"`)
		}
		if k := strings.LastIndex(s, " (raw: "); k >= 0 {
			s = s[:k]
		}
		r.Subject = s
	}
}

// parsePMG reads Proxmox Mail Gateway's filter lines: "FILTERID: ...".
func parsePMG(r *Record, msg string) {
	r.Kind = KindIgnored
	i := strings.Index(msg, ": ")
	if i < 0 {
		return
	}
	id := msg[:i]
	if !isPMGID(id) {
		return
	}
	r.FilterID = id
	rest := msg[i+2:]
	rcpt := func(s string) string {
		a := strings.IndexByte(s, '<')
		b := strings.IndexByte(s, '>')
		if a < 0 || b < a {
			return ""
		}
		return s[a+1 : b]
	}
	rule := func(s string) string {
		if a := strings.LastIndex(s, "(rule: "); a >= 0 {
			return strings.TrimSuffix(s[a+1:], ")")
		}
		return ""
	}
	switch {
	case strings.HasPrefix(rest, "new mail message-id="):
		r.Kind = KindFilter
		r.Verdict = "new"
		r.MessageID = strings.TrimSuffix(strings.TrimPrefix(rest, "new mail message-id="), "#012")
	case strings.HasPrefix(rest, "accept mail to "):
		r.Kind = KindFilter
		r.Verdict = "accept"
		r.To = rcpt(rest)
		r.Reason = rule(rest)
		if b := strings.IndexByte(rest, '>'); b >= 0 {
			s := rest[b+1:]
			if a := strings.IndexByte(s, '('); a >= 0 {
				if c := strings.IndexByte(s[a:], ')'); c > 0 && isQueueID(s[a+1:a+c]) {
					r.NewID = s[a+1 : a+c]
				}
			}
		}
	case strings.HasPrefix(rest, "block mail to "):
		r.Kind = KindFilter
		r.Verdict = "block"
		r.To = rcpt(rest)
		r.Reason = rule(rest)
	case strings.HasPrefix(rest, "moved mail for "):
		r.Kind = KindFilter
		r.Verdict = "quarantine"
		r.To = rcpt(rest)
		r.Reason = strings.TrimSpace(rest[strings.IndexByte(rest, '>')+1:])
	case strings.HasPrefix(rest, "SA score="):
		r.Kind = KindFilter
		r.Verdict = "score"
		r.Reason = rest
		if k := strings.Index(rest, " hits="); k >= 0 {
			r.Reason = rest[:k]
		}
	}
}

// isPMGID reports whether s looks like a PMG filter id (upper-case hex).
func isPMGID(s string) bool {
	if len(s) < 10 || len(s) > 24 {
		return false
	}
	for j := 0; j < len(s); j++ {
		c := s[j]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// parseKV reads key=value pairs separated by ", " or " ". Values in angle
// brackets may hold anything but '>'. A word that is not key=value is
// skipped; an '=' that starts a word ends the pairs.
func parseKV(s string) kvList {
	var kv kvList
	// byte loops, not strings.TrimLeft, ContainsAny and IndexAny: each of
	// those builds its set of bytes again at every call, for every pair of
	// every line
	for len(s) > 0 {
		for len(s) > 0 && (s[0] == ' ' || s[0] == ',') {
			s = s[1:]
		}
		// the key ends at the first '='; a space or comma before it ends
		// a word that is not a pair
		eq := -1
		word := -1
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '=' {
				eq = i
				break
			} else if c == ' ' || c == ',' {
				word = i
				break
			}
		}
		if word >= 0 {
			if strings.IndexByte(s[word:], '=') < 0 {
				break // no pair after it
			}
			s = s[word:]
			continue
		}
		if eq <= 0 {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if len(s) > 0 && s[0] == '<' {
			end := strings.IndexByte(s, '>')
			if end < 0 {
				val, s = s, ""
			} else {
				val, s = s[:end+1], s[end+1:]
			}
		} else {
			end := len(s)
			for i := 0; i < len(s); i++ {
				if s[i] == ' ' || s[i] == ',' {
					end = i
					break
				}
			}
			val, s = s[:end], s[end:]
		}
		kv.add(key, val)
	}
	return kv
}

// kvList is the key=value pairs of a line in the order read, the first of
// a repeated key kept: a handful of pairs, so a slice on the stack instead
// of a map per line.
type kvList struct {
	n    int
	fix  [12][2]string
	more [][2]string
}

func (kv *kvList) lookup(key string) (string, bool) {
	for i := 0; i < kv.n; i++ {
		if kv.fix[i][0] == key {
			return kv.fix[i][1], true
		}
	}
	for _, p := range kv.more {
		if p[0] == key {
			return p[1], true
		}
	}
	return "", false
}

func (kv *kvList) get(key string) string {
	v, _ := kv.lookup(key)
	return v
}

func (kv *kvList) add(key, val string) {
	if _, dup := kv.lookup(key); dup {
		return
	}
	if kv.n < len(kv.fix) {
		kv.fix[kv.n] = [2]string{key, val}
		kv.n++
		return
	}
	kv.more = append(kv.more, [2]string{key, val})
}

// addr returns the address of kv[key] without angle brackets, and whether
// the key was present.
func addr(kv *kvList, key string) (string, bool) {
	v, ok := kv.lookup(key)
	if !ok {
		return "", false
	}
	v = strings.TrimPrefix(v, "<")
	v = strings.TrimSuffix(v, ">")
	return v, true
}

// splitNameAddr splits "name[ip]" (the ip is dropped when it is not a valid
// address, e.g. "192.168.1.001").
func splitNameAddr(s string) (name, ip string) {
	a := strings.IndexByte(s, '[')
	if a < 0 || !strings.HasSuffix(s, "]") {
		return s, ""
	}
	return s[:a], validIP(s[a+1 : len(s)-1])
}

// splitRelay splits "name[ip]:port".
func splitRelay(s string) (name, ip string, port int) {
	a := strings.IndexByte(s, '[')
	if a < 0 {
		return s, "", 0
	}
	b := strings.LastIndexByte(s, ']')
	if b < a {
		return s, "", 0
	}
	name, ip = s[:a], validIP(s[a+1:b])
	if strings.HasPrefix(s[b+1:], ":") {
		port, _ = strconv.Atoi(s[b+2:])
	}
	return name, ip, port
}

func validIP(s string) string {
	s = strings.TrimPrefix(s, "IPv6:")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	if a.Is4() {
		// ParseAddr takes an IPv4 address in its one form (four decimal
		// fields, no leading zeros), which is what String writes: s
		// itself, without a new string for every client and relay
		return s
	}
	return a.Unmap().String()
}
