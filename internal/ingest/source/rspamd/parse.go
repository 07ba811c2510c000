package rspamd

import (
	"sort"
	"strconv"
	"strings"
)

// Result is what rspamd's task log line says of a scan, in its default
// log_format:
//
//	<a1b2c3>; proxy; rspamd_task_write_log: id: <MESSAGE-ID>, qid: <QID>,
//	ip: 203.0.113.25, from: <s@remote.test>, (default: T (add header):
//	[15.00/15.00] [GTUBE(0.00){...},R_SPF_NA(0.00){no SPF record;}]),
//	len: 1234, time: 56.7ms, dns req: 0, digest: <...>, rcpts: <a@lab.test>,
//	mime_rcpt: <a@lab.test>,
type Result struct {
	MessageID string // "" when the message had none ("undef")
	QueueID   string // the MTA's queue id, when the MTA (a milter) told it
	IP        string
	From      string
	Spam      bool   // T (or S, skipped) rather than F
	Action    string // "no action", "add header", "rewrite subject", "soft reject", "greylist", "reject"
	Score     string // "15.00"
	Required  string // the reject threshold, "15.00"
	// Symbols are the rules that fired, "NAME(score)", in the order
	// logged (rspamd's: by name).
	Symbols []string
	Rcpts   []string
}

const marker = "rspamd_task_write_log: "

// IsTaskLog reports, cheaply, whether an rspamd message is the task log
// line (a scan's result); rspamd's other lines carry nothing for a trace.
func IsTaskLog(msg string) bool { return strings.Contains(msg, marker) }

// Parse reads the task log line of a scan; false for any other line.
func Parse(msg string) (Result, bool) {
	i := strings.Index(msg, marker)
	if i < 0 {
		return Result{}, false
	}
	s := msg[i+len(marker):]
	var r Result
	if v, ok := angled(s, "id: <"); ok && v != "undef" {
		r.MessageID = v
	}
	if v, ok := angled(s, " qid: <"); ok && v != "undef" {
		r.QueueID = v
	}
	if v, ok := plain(s, " ip: "); ok {
		r.IP = v
	}
	if v, ok := angled(s, " from: <"); ok && v != "undef" {
		r.From = v
	}
	// (default: T (add header): [15.00/15.00] [SYMBOLS])
	j := strings.Index(s, "(default: ")
	if j < 0 {
		return Result{}, false
	}
	v := s[j+len("(default: "):]
	if len(v) < 4 || v[1] != ' ' || v[2] != '(' {
		return Result{}, false
	}
	r.Spam = v[0] == 'T' || v[0] == 'S'
	k := strings.Index(v, "): [")
	if k < 0 {
		return Result{}, false
	}
	r.Action = v[3:k]
	v = v[k+len("): ["):]
	end := strings.IndexByte(v, ']')
	if end < 0 {
		return Result{}, false
	}
	r.Score, r.Required, _ = strings.Cut(v[:end], "/")
	v = v[end+1:]
	if strings.HasPrefix(v, " [") {
		r.Symbols = symbols(v[2:])
	}
	if rc, ok := angled(s, " rcpts: <"); ok {
		for _, a := range strings.Split(rc, ",") {
			if a = strings.TrimSpace(a); a != "" {
				r.Rcpts = append(r.Rcpts, a)
			}
		}
	}
	return r, true
}

// angled returns what follows key up to the next '>'.
func angled(s, key string) (string, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return "", false
	}
	v := s[i+len(key):]
	j := strings.IndexByte(v, '>')
	if j < 0 {
		return "", false
	}
	return v[:j], true
}

// plain returns what follows key up to the next ','.
func plain(s, key string) (string, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return "", false
	}
	v := s[i+len(key):]
	if j := strings.IndexByte(v, ','); j >= 0 {
		v = v[:j]
	}
	return v, true
}

// symbols reads "NAME(score){options},NAME(score),...]": the options
// (which may hold commas, brackets and braces) are skipped.
func symbols(s string) []string {
	var out []string
	for len(s) > 0 && s[0] != ']' {
		p := strings.IndexByte(s, '(')
		if p <= 0 {
			break
		}
		q := strings.IndexByte(s[p:], ')')
		if q < 0 {
			break
		}
		out = append(out, s[:p+q+1])
		s = s[p+q+1:]
		if len(s) > 0 && s[0] == '{' {
			depth := 0
			n := 0
			for n < len(s) {
				if s[n] == '{' {
					depth++
				} else if s[n] == '}' {
					depth--
					if depth == 0 {
						break
					}
				}
				n++
			}
			if n >= len(s) {
				break
			}
			s = s[n+1:]
		}
		if len(s) > 0 && s[0] == ',' {
			s = s[1:]
		}
	}
	return out
}

// Top returns at most n of the symbols, the heaviest first (by the
// absolute value of their score; those of equal weight in the order
// logged), and how many were left out.
func Top(syms []string, n int) ([]string, int) {
	type sym struct {
		s string
		w float64
	}
	all := make([]sym, len(syms))
	for i, s := range syms {
		w := 0.0
		if a := strings.LastIndexByte(s, '('); a >= 0 && strings.HasSuffix(s, ")") {
			w, _ = strconv.ParseFloat(s[a+1:len(s)-1], 64)
		}
		if w < 0 {
			w = -w
		}
		all[i] = sym{s, w}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].w > all[j].w })
	if len(all) > n {
		out := make([]string, n)
		for i := range out {
			out[i] = all[i].s
		}
		return out, len(all) - n
	}
	out := make([]string, len(all))
	for i := range all {
		out[i] = all[i].s
	}
	return out, 0
}
