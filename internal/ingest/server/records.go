package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// maxJSONDepth bounds the nesting of a JSON record: the records Fluent Bit
// and Vector send nest a few levels (Kubernetes metadata); deeper is an
// attack, refused with 400.
const maxJSONDepth = 64

// sampleBytes: how much of a dropped record is logged.
const sampleBytes = 64

// decoded is what a request body holds: its messages, what was dropped of
// it (by reason), and whether it had to stop early.
type decoded struct {
	msgs    []syslog.Message
	dropped map[string]int
	records int // lines or records seen, kept or not
	max     int // the most records a request may hold
	// tooMany: more than max records; nothing of the request is to be stored
	tooMany bool
	// bad: the body is not what its type says from here on (a JSON array
	// broken in the middle, JSON nested too deep); the messages before it
	// are kept
	bad       error
	badReason string
	// the bytes dropped and the start of the first record dropped, by
	// reason: counted and logged once per request, not once per record
	droppedBytes map[string]int64
	samples      map[string][]byte
}

func (d *decoded) dropOne(reason string, what []byte) {
	if d.dropped == nil {
		d.dropped, d.droppedBytes, d.samples = map[string]int{}, map[string]int64{}, map[string][]byte{}
	}
	d.dropped[reason]++
	d.droppedBytes[reason] += int64(len(what))
	if _, ok := d.samples[reason]; !ok {
		d.samples[reason] = bytes.Clone(what[:min(len(what), sampleBytes)])
	}
}

// another counts one more record; false (and tooMany) past the maximum.
func (d *decoded) another() bool {
	d.records++
	if d.max > 0 && d.records > d.max {
		d.tooMany = true
		return false
	}
	return true
}

// report counts what was dropped, by reason, in lines and bytes, and logs
// (rate-limited) the start of the first record dropped for each reason.
func (d *decoded) report(s *Server, p *Pipeline, transport string) {
	for reason, n := range d.dropped {
		p.m.NotUnderstood.WithLabelValues(reason).Add(float64(n))
		s.Limits.DroppedBytes.WithLabelValues(reason).Add(float64(d.droppedBytes[reason]))
		p.badLog.Info(reason, "dropped input", "reason", reason, "transport", transport, "records", n,
			"bytes", d.droppedBytes[reason], "sample", sample(string(d.samples[reason])))
	}
}

// droppedText says what was dropped, for the sender: "3 (bad json: 2,
// record without a message: 1)".
func (d *decoded) droppedText() (int, string) {
	n := 0
	var parts []string
	for r, k := range d.dropped {
		n += k
		parts = append(parts, fmt.Sprintf("%s: %d", r, k))
	}
	sort.Strings(parts)
	return n, fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

// decodeText reads a body of lines, each a line of a file or a syslog
// frame (with a <PRI>, or in RFC 5424).
func decodeText(data []byte, d *decoded) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		l = bytes.TrimRight(l, "\r")
		if len(l) == 0 {
			continue
		}
		if !d.another() {
			return
		}
		d.msgs = append(d.msgs, syslog.ParseFrame(string(l)))
	}
}

// decodeJSON reads JSON values one after another: one record, an array of
// records, or records one per line (NDJSON), one record at a time (never
// the whole body as a tree). A value that is not JSON is skipped to the end
// of its line and counted (the records after it are kept); an array broken
// in the middle stops the reading (the records before it are kept: where
// its next record starts cannot be told).
func decodeJSON(data []byte, d *decoded) {
	var (
		raw json.RawMessage
		rec jsonRecord
	)
	pos := 0
	for {
		pos = skipSpace(data, pos)
		if pos == len(data) {
			return
		}
		base := pos
		dec := json.NewDecoder(bytes.NewReader(data[base:]))
		if data[pos] == '[' {
			_, _ = dec.Token()
			for dec.More() {
				if !d.another() {
					return
				}
				start := base + int(dec.InputOffset())
				if err := dec.Decode(&raw); err != nil {
					d.fail(err, data[skipSpace(data, start):])
					return
				}
				if !d.record(raw, &rec) {
					return
				}
			}
			if _, err := dec.Token(); err != nil {
				d.fail(err, data[base+int(dec.InputOffset()):])
				return
			}
			pos = base + int(dec.InputOffset())
			continue
		}
		for {
			start := skipSpace(data, base+int(dec.InputOffset()))
			if start == len(data) {
				return
			}
			if data[start] == '[' {
				pos = start
				break
			}
			if !d.another() {
				return
			}
			if err := dec.Decode(&raw); err != nil {
				if tooDeep(err) {
					d.fail(err, data[start:])
					return
				}
				// not JSON: skip its line, read on from the next one
				end := bytes.IndexByte(data[start:], '\n')
				if end < 0 {
					end = len(data) - start
				}
				d.dropOne(ReasonBadJSON, data[start:start+end])
				pos = start + end
				break
			}
			if !d.record(raw, &rec) {
				return
			}
		}
	}
}

// fail stops the reading at a JSON error; what is the body from there.
func (d *decoded) fail(err error, what []byte) {
	d.bad, d.badReason = err, ReasonBadJSON
	if tooDeep(err) {
		d.bad, d.badReason = fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth), ReasonTooDeep
	}
	d.dropOne(d.badReason, what)
}

func tooDeep(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) && strings.Contains(se.Error(), "exceeded max depth")
}

// record reads one JSON value of a body: a record (an object), or a string
// (a syslog line or frame); anything else has no message. false: the
// reading must stop (JSON nested too deep).
func (d *decoded) record(raw []byte, rec *jsonRecord) bool {
	if depth(raw) > maxJSONDepth {
		d.bad, d.badReason = fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth), ReasonTooDeep
		d.dropOne(d.badReason, raw)
		return false
	}
	switch raw[0] {
	case '{':
		*rec = jsonRecord{}
		if json.Unmarshal(raw, rec) == nil {
			if m, ok := rec.message(); ok {
				d.msgs = append(d.msgs, m)
				return true
			}
		}
	case '"':
		var t jsonText
		if t.UnmarshalJSON(raw) == nil {
			d.msgs = append(d.msgs, syslog.ParseFrame(t.s))
			return true
		}
	}
	d.dropOne(ReasonEmptyRecord, raw)
	return true
}

// depth is how deep arrays and objects nest in raw, valid JSON.
func depth(raw []byte) int {
	n, deepest, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			n++
			deepest = max(deepest, n)
		case c == ']' || c == '}':
			n--
		}
	}
	return deepest
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonText is a JSON string or number (its text); anything else is empty.
type jsonText struct {
	s   string
	num bool
}

func (t *jsonText) UnmarshalJSON(b []byte) error {
	*t = jsonText{}
	switch {
	case len(b) >= 2 && b[0] == '"':
		in := b[1 : len(b)-1]
		if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
			t.s = string(in)
			return nil
		}
		return json.Unmarshal(b, &t.s)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		t.s, t.num = string(b), true
	}
	return nil
}

func (t jsonText) ok() bool { return t.num || t.s != "" }

// jsonRecord holds the fields of a record the ingest reads; the others
// are skipped without being decoded.
type jsonRecord struct {
	Message          jsonText `json:"message"`
	Log              jsonText `json:"log"`
	Msg              jsonText `json:"msg"`
	MESSAGE          jsonText `json:"MESSAGE"`
	Hostname         jsonText `json:"hostname"`
	Host             jsonText `json:"host"`
	HOSTNAME         jsonText `json:"HOSTNAME"`
	UHostname        jsonText `json:"_HOSTNAME"`
	Appname          jsonText `json:"appname"`
	Ident            jsonText `json:"ident"`
	Program          jsonText `json:"program"`
	AppName          jsonText `json:"app_name"`
	SyslogIdentifier jsonText `json:"SYSLOG_IDENTIFIER"`
	SyslogIdentLower jsonText `json:"syslog_identifier"`
	Procid           jsonText `json:"procid"`
	Pid              jsonText `json:"pid"`
	UPid             jsonText `json:"_PID"`
	SyslogPid        jsonText `json:"SYSLOG_PID"`
	Timestamp        jsonText `json:"timestamp"`
	Time             jsonText `json:"time"`
	AtTimestamp      jsonText `json:"@timestamp"`
	Date             jsonText `json:"date"`
}

// first is the first of ts that is set.
func first(ts ...jsonText) string {
	for _, t := range ts {
		if t.ok() {
			return t.s
		}
	}
	return ""
}

// message reads one JSON record. The text is in "message" (Vector,
// Fluent Bit's syslog input), "log" (Fluent Bit's tail input), "msg" or
// "MESSAGE" (journald). When the text is a whole syslog line (or frame) it
// is read as one; when it is only the message part (Vector's syslog
// source, Fluent Bit's syslog parser, journald), the record's timestamp,
// host, program and pid fields are its header: the message is read as
// those Fields, never joined into a line to be split again.
func (r *jsonRecord) message() (syslog.Message, bool) {
	text := first(r.Message, r.Log, r.Msg, r.MESSAGE)
	if text == "" {
		return syslog.Message{}, false
	}
	text = strings.TrimRight(text, "\r\n")
	if syslog.HasPRI(text) {
		return syslog.ParseFrame(text), true
	}
	if _, err := syslog.ParseLine(text, time.Now(), nil); err == nil {
		return syslog.Message{Line: text}, true
	}
	host := first(r.Hostname, r.Host, r.HOSTNAME, r.UHostname)
	prog := first(r.Appname, r.Ident, r.Program, r.AppName, r.SyslogIdentifier, r.SyslogIdentLower)
	ts, ok := r.time()
	if host == "" || prog == "" || !ok {
		return syslog.Message{Line: text}, true // the correlator counts it as not syslog
	}
	return syslog.Message{Fields: &syslog.Fields{Time: ts, Host: host, App: prog,
		ProcID: first(r.Procid, r.Pid, r.UPid, r.SyslogPid), Message: text}}, true
}

func (r *jsonRecord) time() (time.Time, bool) {
	for _, v := range []jsonText{r.Timestamp, r.Time, r.AtTimestamp, r.Date} {
		switch {
		case v.num:
			if f, err := strconv.ParseFloat(v.s, 64); err == nil {
				return epoch(f), true
			}
		case v.s != "":
			if t, err := time.Parse(time.RFC3339Nano, v.s); err == nil {
				return t, true
			}
			if f, err := strconv.ParseFloat(v.s, 64); err == nil {
				return epoch(f), true
			}
		}
	}
	return time.Time{}, false
}

// epoch reads Fluent Bit's "date": seconds since 1970 with a fraction.
func epoch(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}
