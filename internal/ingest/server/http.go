package server

import (
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// Handler serves POST /ingest (and POST /): a body of raw syslog lines
// (text/plain, one per line), or JSON (application/json,
// application/x-ndjson): one record, an array of records, or records one
// per line, in the shapes Fluent Bit's http output and Vector's http sink
// send. The answer is 204 once the events are stored; 400 for a body that
// is not what its type says (the records before the bad part are kept),
// 401 without the right bearer token or a verified client certificate,
// 413 for a body over the limit, 503 when the ingester is shutting down.
func (s *Server) Handler(p *Pipeline) http.Handler {
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) { s.serveIngest(p, w, r) }
	mux.HandleFunc("POST /ingest", h)
	mux.HandleFunc("POST /{$}", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux
}

// authorized: a verified client certificate, or the bearer token when one
// is configured; with neither configured (only with InsecureNoAuth, see
// Validate) everyone.
func (s *Server) authorized(r *http.Request) (bool, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true, nil
	}
	if s.o.Token == "" && s.o.TokenFile == "" {
		return s.o.TLSClientCAFile == "" && s.o.InsecureNoAuth, nil
	}
	want, err := s.token.get()
	if err != nil {
		return false, err
	}
	if want == "" {
		return false, nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false, nil
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1, nil
}

func (s *Server) serveIngest(p *Pipeline, w http.ResponseWriter, r *http.Request) {
	ok, err := s.authorized(r)
	if err != nil {
		s.log.Error(err, "cannot read the ingest token; refusing HTTP ingest")
		http.Error(w, "ingest token unavailable", http.StatusServiceUnavailable)
		return
	}
	if !ok {
		cause := "no bearer token"
		if r.Header.Get("Authorization") != "" {
			cause = "wrong bearer token" // never the token itself
		}
		p.Refused(ReasonUnauthorized, "http", r.RemoteAddr, cause)
		w.Header().Set("WWW-Authenticate", `Bearer realm="mailtrace-ingest"`)
		http.Error(w, s.unauthorizedMessage(), http.StatusUnauthorized)
		return
	}
	// bodies in memory are bounded: a few requests at a time, the others wait
	select {
	case s.reqs <- struct{}{}:
		defer func() { <-s.reqs }()
	case <-r.Context().Done():
		return
	}
	body := io.Reader(http.MaxBytesReader(w, r.Body, s.o.MaxRequestBytes))
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return
		}
		defer zr.Close()
		// the limit applies to the decompressed body too
		body = io.LimitReader(zr, s.o.MaxRequestBytes+1)
	}
	data, err := io.ReadAll(body)
	if err == nil && int64(len(data)) > s.o.MaxRequestBytes {
		err = &http.MaxBytesError{Limit: s.o.MaxRequestBytes}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p.Dropped(ReasonRequestTooBig, "http", r.RemoteAddr)
			http.Error(w, fmt.Sprintf("request body over the limit of %d bytes (--max-request-bytes): nothing of it was stored; send smaller batches", s.o.MaxRequestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		p.Dropped(ReasonHalfLine, "http", r.RemoteAddr)
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var msgs []syslog.Message
	var bad error
	switch {
	case strings.Contains(mt, "json"):
		msgs, bad = jsonMessages(data, func(reason string) { p.Dropped(reason, "http", "") })
	default:
		msgs = textMessages(data)
	}
	if len(msgs) > 0 {
		if lim, _ := r.Context().Value(limiterKey{}).(*rate.Limiter); lim != nil {
			if err := waitLines(r.Context(), lim, len(msgs)); err != nil {
				return // the sender went away before anything was stored
			}
		}
		if err := p.SubmitWait(r.Context(), "http", msgs); err != nil {
			http.Error(w, "not stored: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	if bad != nil {
		p.Dropped(ReasonBadJSON, "http", bad.Error())
		http.Error(w, fmt.Sprintf("%d records stored, then: %v", len(msgs), bad), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) unauthorizedMessage() string {
	var ways []string
	if s.o.Token != "" || s.o.TokenFile != "" {
		ways = append(ways, "an Authorization: Bearer header with the ingest token")
	}
	if s.o.TLSClientCAFile != "" {
		ways = append(ways, "a client certificate signed by the ingest client CA")
	}
	return "unauthorized: this endpoint needs " + strings.Join(ways, " or ")
}

// textMessages reads a body of lines, each a line of a file or a syslog
// frame (with a <PRI>, or in RFC 5424).
func textMessages(data []byte) []syslog.Message {
	var out []syslog.Message
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		l = bytes.TrimRight(l, "\r")
		if len(l) > 0 {
			out = append(out, syslog.ParseFrame(string(l)))
		}
	}
	return out
}

// jsonMessages reads JSON values one after another (one value, an array,
// or NDJSON) and turns each record into a message.
func jsonMessages(data []byte, drop func(reason string)) ([]syslog.Message, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []syslog.Message
	add := func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, syslog.ParseFrame(v))
		case map[string]any:
			if m, ok := recordMessage(v); ok {
				out = append(out, m)
			} else {
				drop(ReasonEmptyRecord)
			}
		default:
			drop(ReasonEmptyRecord)
		}
	}
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				add(e)
			}
		} else {
			add(v)
		}
	}
}

func str(m map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			if v != "" {
				return v
			}
		case json.Number:
			return v.String()
		}
	}
	return ""
}

// recordMessage reads one JSON record. The text is in "message" (Vector,
// Fluent Bit's syslog input), "log" (Fluent Bit's tail input), "msg" or
// "MESSAGE" (journald). When the text is a whole syslog line (or frame) it
// is read as one; when it is only the message part (Vector's syslog
// source, Fluent Bit's syslog parser, journald), the record's timestamp,
// host, program and pid fields are its header: the message is read as
// those Fields, never joined into a line to be split again.
func recordMessage(m map[string]any) (syslog.Message, bool) {
	text := str(m, "message", "log", "msg", "MESSAGE")
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
	host := str(m, "hostname", "host", "HOSTNAME", "_HOSTNAME")
	prog := str(m, "appname", "ident", "program", "app_name", "SYSLOG_IDENTIFIER", "syslog_identifier")
	ts, ok := recordTime(m)
	if host == "" || prog == "" || !ok {
		return syslog.Message{Line: text}, true // the correlator counts it as not syslog
	}
	return syslog.Message{Fields: &syslog.Fields{Time: ts, Host: host, App: prog,
		ProcID: str(m, "procid", "pid", "_PID", "SYSLOG_PID"), Message: text}}, true
}

func recordTime(m map[string]any) (time.Time, bool) {
	for _, k := range []string{"timestamp", "time", "@timestamp", "date"} {
		switch v := m[k].(type) {
		case string:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return t, true
			}
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return epoch(f), true
			}
		case json.Number:
			if f, err := v.Float64(); err == nil {
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
