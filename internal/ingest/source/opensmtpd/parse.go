package opensmtpd

import (
	"strings"
)

// The grammar of OpenSMTPD's log lines (6.x, 7.x; smtp_session.c, mta.c,
// mda.c, queue.c): "SESSION COMPONENT VERB key=value..." where SESSION is
// 16 hex digits, COMPONENT "smtp", "mta" or "mda", VERB a word
// ("delivery", "message", "envelope", "failed-command", "connected",
// ...) or "event=WORD"; values are bare, <quoted in angles> or "quoted".
// An envelope id (evpid, 16 hex digits) is its message id (msgid, 8) and
// a recipient's own 8. The queue's expiries and removals read "relay:
// Expire for EVPID: from=<...>, to=<...>, rcpt=<...>, delay=..., stat=...".

// Kind is what a line is.
type Kind uint8

// Kinds of lines.
const (
	KindIgnored       Kind = iota // TLS, disconnections, the mta's connections...
	KindUnknown                   // a line this source cannot read
	KindConnected                 // smtp connected: a session's client
	KindAuth                      // smtp authentication
	KindMessage                   // smtp message: a message accepted
	KindEnvelope                  // smtp envelope: one of its recipients
	KindDelivery                  // mta or mda delivery: an attempt's result
	KindFailedCommand             // smtp failed-command: a refused command
	KindExpire                    // the queue expired or removed an envelope
)

// Record is what one line says.
type Record struct {
	Kind      Kind
	Session   string // the session id (16 hex digits)
	Component string // smtp, mta, mda
	MsgID     string // 8 hex digits
	EvpID     string // 16 hex digits
	Fields    map[string]string
	// Prefix of an expiry: "Expire", "Remove"; its Stat.
	Prefix string
}

// Field returns a field's value.
func (r *Record) Field(k string) string { return r.Fields[k] }

// Parse reads one line of smtpd's.
func Parse(msg string) Record {
	if strings.HasPrefix(msg, "relay: ") || strings.HasPrefix(msg, "delivery: ") {
		return parseQueueLog(msg)
	}
	if len(msg) < 18 || msg[16] != ' ' || !isHex(msg[:16]) {
		return Record{Kind: KindUnknown}
	}
	r := Record{Session: msg[:16]}
	rest := msg[17:]
	comp, rest := cutWord(rest)
	r.Component = comp
	verb, rest := cutWord(rest)
	if v, ok := strings.CutPrefix(verb, "event="); ok {
		verb = v
	}
	r.Fields = fields(rest)
	switch {
	case comp == "smtp" && verb == "connected":
		r.Kind = KindConnected
	case comp == "smtp" && verb == "authentication":
		r.Kind = KindAuth
	case comp == "smtp" && verb == "message":
		r.Kind = KindMessage
		r.MsgID = r.Field("msgid")
	case comp == "smtp" && verb == "envelope":
		r.Kind = KindEnvelope
		r.EvpID = r.Field("evpid")
	case (comp == "mta" || comp == "mda") && verb == "delivery":
		r.Kind = KindDelivery
		r.EvpID = r.Field("evpid")
	case comp == "smtp" && verb == "failed-command":
		r.Kind = KindFailedCommand
	case comp == "smtp" || comp == "mta" || comp == "mda":
		r.Kind = KindIgnored
	default:
		r.Kind = KindUnknown
	}
	if r.EvpID != "" {
		if len(r.EvpID) != 16 || !isHex(r.EvpID) {
			r.Kind = KindUnknown
		} else {
			r.MsgID = r.EvpID[:8]
		}
	}
	if (r.Kind == KindMessage) && (len(r.MsgID) != 8 || !isHex(r.MsgID)) {
		r.Kind = KindUnknown
	}
	return r
}

// parseQueueLog reads "relay: Expire for EVPID: from=<a>, to=<b>, rcpt=<c>,
// delay=1d, stat=Envelope expired".
func parseQueueLog(msg string) Record {
	_, rest, _ := strings.Cut(msg, ": ")
	prefix, rest := cutWord(rest)
	rest, ok := strings.CutPrefix(rest, "for ")
	if !ok || len(rest) < 18 || rest[16] != ':' || !isHex(rest[:16]) {
		return Record{Kind: KindUnknown}
	}
	r := Record{Kind: KindExpire, Prefix: prefix, EvpID: rest[:16], MsgID: rest[:8], Fields: map[string]string{}}
	for _, kv := range strings.Split(rest[18:], ", ") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok {
			r.Fields[k] = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
		}
	}
	return r
}

// fields reads key=value pairs: a value is "quoted" (backslash escapes),
// <in angles> or a word.
func fields(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		for len(s) > 0 && s[0] == ' ' {
			s = s[1:]
		}
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexByte(s, ' ')
		if eq <= 0 || (sp >= 0 && sp < eq) {
			if sp < 0 {
				return out
			}
			s = s[sp+1:]
			continue
		}
		k, rest := s[:eq], s[eq+1:]
		var v string
		switch {
		case strings.HasPrefix(rest, `"`):
			var b strings.Builder
			i := 1
			for i < len(rest) && rest[i] != '"' {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
				i++
			}
			v = b.String()
			if i < len(rest) {
				i++
			}
			s = rest[i:]
		case strings.HasPrefix(rest, "<"):
			j := strings.IndexByte(rest, '>')
			if j < 0 {
				v, s = rest[1:], ""
			} else {
				v, s = rest[1:j], rest[j+1:]
			}
		default:
			v, s = cutWord(rest)
		}
		out[k] = v
	}
	return out
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return len(s) > 0
}

func cutWord(s string) (string, string) {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// enhancedCode returns the RFC 3463 code in an SMTP reply or status
// ("550 5.1.1 ..." or "5.1.1 ..."), or "".
func enhancedCode(s string) string {
	if len(s) >= 4 && s[3] == ' ' && isDigits(s[:3]) {
		s = s[4:]
	}
	w, _ := cutWord(s)
	parts := strings.Split(w, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 || !isDigits(p) {
			return ""
		}
	}
	return w
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}
