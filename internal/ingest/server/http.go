package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"golang.org/x/time/rate"
)

// Handler serves POST /ingest (and POST /): a body of raw syslog lines
// (text/plain, one per line), or JSON (application/json,
// application/x-ndjson): one record, an array of records, or records one
// per line, in the shapes Fluent Bit's http output and Vector's http sink
// send. The answer is 204 once the lines are in the write-ahead log and on
// disk (without one, once their events are stored); 200, saying how many
// were dropped and why, when some lines or records were not (an NDJSON
// line that is not JSON is skipped, the lines after it kept; a record
// without a message); 400 for a body that is not what its type says (a
// JSON array broken in the middle: the records before the bad part are
// kept; JSON nested deeper than 64 levels), 401 without the right bearer
// token or a verified client certificate, 408 for a body not sent within
// BodyTimeout, 413 for a body over the limit (after gzip) or over
// MaxRecordsPerRequest records (nothing of it is stored), 503 when the
// ingester is shutting down or holds as many bodies as it may. POST
// /v1/logs takes OpenTelemetry logs over OTLP/HTTP (otlp.go).
func (s *Server) Handler(p *Pipeline) http.Handler {
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) { s.serveIngest(p, w, r) }
	mux.HandleFunc("POST /ingest", h)
	mux.HandleFunc("POST /{$}", h)
	mux.HandleFunc("POST "+OTLPLogsPath, func(w http.ResponseWriter, r *http.Request) { s.serveOTLP(p, w, r) }) // otlp.go
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
	// the body is read first, under its limits, and parsed once read: a
	// slow body holds no parsing slot
	data, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		var be *bodyError
		if !errors.As(err, &be) {
			be = &bodyError{http.StatusBadRequest, ReasonHalfLine, err.Error()}
		}
		switch be.reason {
		case ReasonSlowBody:
			s.cut(p, be.reason, "http", r.RemoteAddr)
		case ReasonBusy:
			p.Refused(be.reason, "http", r.RemoteAddr, be.msg)
			w.Header().Set("Retry-After", "1")
		default:
			s.droppedFrame(p, be.reason, "http", max(r.ContentLength, int64(len(data))), nil)
		}
		http.Error(w, be.msg, be.status)
		return
	}
	select {
	case s.reqs <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	d := decoded{max: s.o.MaxRecordsPerRequest}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if strings.Contains(mt, "json") {
		decodeJSON(data, &d)
	} else {
		decodeText(data, &d)
	}
	<-s.reqs
	if d.tooMany {
		// the request is refused whole: counted once, not record by record
		s.droppedFrame(p, ReasonTooManyRecords, "http", int64(len(data)), nil)
		http.Error(w, fmt.Sprintf("more than %d records in one request (--max-records-per-request): nothing of it was stored; send smaller batches",
			s.o.MaxRecordsPerRequest), http.StatusRequestEntityTooLarge)
		return
	}
	d.report(s, p, "http")
	msgs := d.msgs
	if len(msgs) > 0 {
		if lim, _ := r.Context().Value(limiterKey{}).(*rate.Limiter); lim != nil {
			if err := waitLines(r.Context(), lim, len(msgs)); err != nil {
				return // the sender went away before anything was stored
			}
		}
		if err := p.SubmitWait(r.Context(), "http", msgs); err != nil {
			if Retryable(err) {
				// nothing of the request was accepted: the sender keeps it
				w.Header().Set("Retry-After", "10")
				http.Error(w, "not accepted, retry later: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			http.Error(w, "not stored: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	switch n, what := d.droppedText(); {
	case d.bad != nil:
		http.Error(w, fmt.Sprintf("%d records stored, then: %v", len(msgs), d.bad), http.StatusBadRequest)
	case n > 0 && len(msgs) == 0 && d.dropped[ReasonBadJSON] > 0:
		http.Error(w, "no record stored: dropped "+what, http.StatusBadRequest)
	case n > 0:
		// stored, but not all of it: a 2xx (a retry would drop the same),
		// saying what was dropped
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintf(w, "%d records stored, dropped %s\n", len(msgs), what)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
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
