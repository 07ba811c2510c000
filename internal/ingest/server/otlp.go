package server

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"golang.org/x/time/rate"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/mailtrace/mailtrace/internal/ingest/source/stalwart"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// OpenTelemetry logs over OTLP/HTTP (POST /v1/logs): what the
// OpenTelemetry Collector's otlphttp exporter sends (and Fluent Bit's and
// Vector's OpenTelemetry outputs), protobuf (application/x-protobuf) or
// JSON (application/json), gzip or not. The same authentication, TLS,
// byte cap, deadline, bodies-in-memory bound and record cap as POST
// /ingest; the answer is the OTLP/HTTP one: 200 with an
// ExportLogsServiceResponse once the lines are in the write-ahead log
// (its partial_success says how many records were rejected and why), 400
// for a body that does not decode, 413 over a limit, 415 for another
// Content-Type, 503 with Retry-After when the log is full or the bodies
// in memory are at their bound; the body of an error is a google.rpc.Status.
//
// A body is decoded whole by pdata (the Collector's own data model), into
// objects much larger than their bytes on the wire: an empty log record
// is 2 bytes of protobuf and about 200 of memory. Before it is decoded, a
// walk of the wire format (protowire, which allocates nothing) or of the
// JSON text counts what pdata will make of it: the log records, against
// --max-records-per-request, and the bytes they will take, which are
// reserved in the same bound as the bodies (MaxConcurrentRequests x
// MaxRequestBytes) before the decoding starts; the walk also refuses
// values nested deeper than maxJSONDepth levels, which pdata's recursive
// decoder would follow as deep as they go.

// OTLPLogsPath is where OTLP/HTTP log exporters send (their default path).
const OTLPLogsPath = "/v1/logs"

// Reasons an OTLP request or record is dropped (besides those of POST /ingest).
const (
	ReasonOTLPDecode     = "bad otlp"          // a body that is not an ExportLogsServiceRequest
	ReasonOTLPMediaType  = "otlp content type" // neither application/x-protobuf nor application/json
	ReasonOTLPNoApp      = "otlp record without a program"
	ReasonOTLPTooCostly  = "otlp request too large decoded"
	ReasonOTLPNoTimeHost = "otlp record without a time or host"
)

const (
	ctProtobuf = "application/x-protobuf"
	ctJSON     = "application/json"
)

// otlpError answers an OTLP request with a google.rpc.Status in the
// request's encoding, as the OTLP/HTTP specification asks.
func otlpError(w http.ResponseWriter, json bool, status int, msg string) {
	st := &spb.Status{Code: int32(grpcCode(status)), Message: msg}
	var b []byte
	if json {
		b, _ = protojson.Marshal(st)
		w.Header().Set("Content-Type", ctJSON)
	} else {
		b, _ = proto.Marshal(st)
		w.Header().Set("Content-Type", ctProtobuf)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// grpcCode is the gRPC code of an HTTP status (for the Status body).
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 3 // InvalidArgument
	case http.StatusUnauthorized:
		return 16 // Unauthenticated
	case http.StatusRequestEntityTooLarge:
		return 8 // ResourceExhausted
	case http.StatusRequestTimeout:
		return 4 // DeadlineExceeded
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return 14 // Unavailable
	case http.StatusUnsupportedMediaType:
		return 12 // Unimplemented
	}
	return 2 // Unknown
}

func (s *Server) serveOTLP(p *Pipeline, w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isJSON := mt == ctJSON
	ok, err := s.authorized(r)
	if err != nil {
		s.log.Error(err, "cannot read the ingest token; refusing OTLP ingest")
		otlpError(w, isJSON, http.StatusServiceUnavailable, "ingest token unavailable")
		return
	}
	if !ok {
		cause := "no bearer token"
		if r.Header.Get("Authorization") != "" {
			cause = "wrong bearer token" // never the token itself
		}
		p.Refused(ReasonUnauthorized, "otlp", r.RemoteAddr, cause)
		w.Header().Set("WWW-Authenticate", `Bearer realm="mailtrace-ingest"`)
		otlpError(w, isJSON, http.StatusUnauthorized, s.unauthorizedMessage())
		return
	}
	if mt != ctProtobuf && mt != ctJSON {
		s.droppedFrame(p, ReasonOTLPMediaType, "otlp", max(r.ContentLength, 0), nil)
		otlpError(w, isJSON, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: OTLP/HTTP logs are %s or %s", mt, ctProtobuf, ctJSON))
		return
	}
	data, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		var be *bodyError
		if !errors.As(err, &be) {
			be = &bodyError{http.StatusBadRequest, ReasonHalfLine, err.Error()}
		}
		switch be.reason {
		case ReasonSlowBody:
			s.cut(p, be.reason, "otlp", r.RemoteAddr)
		case ReasonBusy:
			p.Refused(be.reason, "otlp", r.RemoteAddr, be.msg)
			w.Header().Set("Retry-After", "1")
		default:
			s.droppedFrame(p, be.reason, "otlp", max(r.ContentLength, int64(len(data))), nil)
		}
		otlpError(w, isJSON, be.status, be.msg)
		return
	}
	select {
	case s.reqs <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	d, status, msg := s.decodeOTLP(data, isJSON)
	<-s.reqs
	if status != 0 {
		reason := ReasonOTLPDecode
		switch status {
		case http.StatusRequestEntityTooLarge:
			reason = ReasonTooManyRecords
			if strings.Contains(msg, "decoded") {
				reason = ReasonOTLPTooCostly
			}
		case http.StatusServiceUnavailable:
			p.Refused(ReasonBusy, "otlp", r.RemoteAddr, msg)
			w.Header().Set("Retry-After", "1")
			otlpError(w, isJSON, status, msg)
			return
		}
		if strings.Contains(msg, "nested deeper") {
			reason = ReasonTooDeep
		}
		s.droppedFrame(p, reason, "otlp", int64(len(data)), nil)
		otlpError(w, isJSON, status, msg)
		return
	}
	d.report(s, p, "otlp")
	if len(d.msgs) > 0 {
		if lim, _ := r.Context().Value(limiterKey{}).(*rate.Limiter); lim != nil {
			if err := waitLines(r.Context(), lim, len(d.msgs)); err != nil {
				return // the sender went away before anything was stored
			}
		}
		if err := p.SubmitWait(r.Context(), "otlp", d.msgs); err != nil {
			if Retryable(err) {
				// nothing of the request was accepted: the exporter retries
				w.Header().Set("Retry-After", "10")
				otlpError(w, isJSON, http.StatusServiceUnavailable, "not accepted, retry later: "+err.Error())
				return
			}
			otlpError(w, isJSON, http.StatusServiceUnavailable, "not stored: "+err.Error())
			return
		}
	}
	resp := plogotlp.NewExportResponse()
	if n, what := d.droppedText(); n > 0 {
		// accepted but for these: a retry would reject the same
		resp.PartialSuccess().SetRejectedLogRecords(int64(n))
		resp.PartialSuccess().SetErrorMessage(fmt.Sprintf("%d log records accepted, rejected %s", len(d.msgs), what))
	}
	var b []byte
	if isJSON {
		b, err = resp.MarshalJSON()
		w.Header().Set("Content-Type", ctJSON)
	} else {
		b, err = resp.MarshalProto()
		w.Header().Set("Content-Type", ctProtobuf)
	}
	if err != nil { // cannot happen: a response of two fields
		b = nil
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// decodeOTLP decodes an OTLP logs body into messages, under the cost
// bound (status 0), or says why not: the status and the message for the
// sender (413 over a limit, 503 when the bodies in memory are at their
// bound, 400 for a body that does not decode).
func (s *Server) decodeOTLP(data []byte, isJSON bool) (d decoded, status int, msg string) {
	d.max = s.o.MaxRecordsPerRequest
	var c otlpCost
	var err error
	if isJSON {
		c, err = jsonCost(data)
	} else {
		c, err = protoCost(data)
	}
	if err != nil {
		return d, http.StatusBadRequest, "not an OTLP ExportLogsServiceRequest: " + err.Error()
	}
	if d.max > 0 && c.records > d.max {
		return d, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d log records in one request (--max-records-per-request): nothing of it was stored; send smaller batches", d.max)
	}
	// what the decoding may take must fit in the bound of the bodies in
	// memory, beside its own body: a request that could never fit is
	// refused for good, one that does not fit now is retried
	limit := int64(s.o.MaxConcurrentRequests)*s.o.MaxRequestBytes - int64(len(data))
	if c.bytes > limit {
		return d, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request would take %d MiB decoded, over %d MiB: nothing of it was stored; send smaller batches",
			c.bytes>>20, limit>>20)
	}
	if !s.reserve(c.bytes) {
		return d, http.StatusServiceUnavailable, "too many request bytes in memory; retry later"
	}
	defer s.unreserve(c.bytes)
	req := plogotlp.NewExportRequest()
	if isJSON {
		err = req.UnmarshalJSON(data)
	} else {
		err = req.UnmarshalProto(data)
	}
	if err != nil {
		return d, http.StatusBadRequest, "not an OTLP ExportLogsServiceRequest: " + err.Error()
	}
	if d.max > 0 && req.Logs().LogRecordCount() > d.max {
		// JSON: the records are counted once decoded
		return d, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d log records in one request (--max-records-per-request): nothing of it was stored; send smaller batches", d.max)
	}
	otlpMessages(req.Logs(), &d)
	return d, 0, ""
}

// otlpMessages maps the log records of ld to messages, and counts those
// it cannot use in d.
func otlpMessages(ld plog.Logs, d *decoded) {
	rls := ld.ResourceLogs()
	d.msgs = make([]syslog.Message, 0, ld.LogRecordCount())
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := resourceOf(rl.Resource().Attributes())
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				d.records++
				m, reason := recordMessage(res, lrs.At(k))
				if reason != "" {
					d.dropOne(reason, []byte(recordSample(lrs.At(k))))
					continue
				}
				d.msgs = append(d.msgs, m)
			}
		}
	}
}

// otlpResource is what a log record takes from its resource.
type otlpResource struct {
	host, service, container, pid string
}

func resourceOf(a pcommon.Map) otlpResource {
	return otlpResource{
		host:      firstAttr(a, "host.name", "k8s.pod.name", "service.instance.id"),
		service:   firstAttr(a, "service.name"),
		container: firstAttr(a, "k8s.container.name"),
		pid:       firstAttr(a, "process.pid"),
	}
}

// firstAttr is the first of keys that a has as a non-empty string (or an
// integer, as text).
func firstAttr(a pcommon.Map, keys ...string) string {
	for _, k := range keys {
		v, ok := a.Get(k)
		if !ok {
			continue
		}
		switch v.Type() {
		case pcommon.ValueTypeStr:
			if s := v.Str(); s != "" {
				return s
			}
		case pcommon.ValueTypeInt:
			return strconv.FormatInt(v.Int(), 10)
		}
	}
	return ""
}

// bodyText is a record's text: its body when a string, else the
// "message" of a map body (the journald and some JSON receivers).
func bodyText(lr plog.LogRecord) string {
	b := lr.Body()
	switch b.Type() {
	case pcommon.ValueTypeStr:
		return b.Str()
	case pcommon.ValueTypeMap:
		return firstAttr(b.Map(), "message", "MESSAGE", "msg", "log")
	}
	return ""
}

// stalwartLevels are the levels Stalwart's OpenTelemetry exporter names
// in SeverityText.
var stalwartLevels = map[string]bool{"TRACE": true, "DEBUG": true, "INFO": true, "WARN": true, "ERROR": true}

// recordMessage maps one log record to a message, or says why it cannot
// (the reason it is rejected). The syslog fields come from the
// attributes the Collector's syslog receiver and syslog_parser operator
// set (appname, hostname, proc_id, message), else from the resource
// (service.name, or k8s.container.name, is the program; host.name, else
// k8s.pod.name or service.instance.id, the host; process.pid); the time
// is the record's Timestamp, else its ObservedTimestamp. A body that is a
// whole syslog line or frame (filelog tailing /var/log/mail.log without a
// parser) is read as one. A record of Stalwart's own exporter (an
// EventName, a SeverityText, the event's description as its body and its
// keys as attributes) becomes the line Stalwart's text tracer writes for
// the same event, which the Stalwart source reads.
func recordMessage(res otlpResource, lr plog.LogRecord) (syslog.Message, string) {
	attrs := lr.Attributes()
	text := firstAttr(attrs, "message")
	if text == "" {
		text = bodyText(lr)
	}
	text = strings.TrimRight(text, "\r\n")
	if text == "" {
		return syslog.Message{}, ReasonEmptyRecord
	}
	app := firstAttr(attrs, "appname", "syslog.appname", "app_name")
	if app == "" {
		app = res.service
	}
	if app == "" {
		app = res.container
	}
	host := firstAttr(attrs, "hostname", "syslog.hostname", "host.name")
	if host == "" {
		host = res.host
	}
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	if ev := lr.EventName(); ev != "" && stalwartLevels[lr.SeverityText()] {
		text = stalwartLine(lr.SeverityText(), text, ev, attrs)
		if host == "" {
			// Stalwart's exporter names no host (its queue ids are unique
			// without one)
			host = "stalwart"
		}
	} else if firstAttr(attrs, "message") == "" {
		// a whole line or frame in the body is read as such
		if syslog.HasPRI(text) {
			return syslog.ParseFrame(text), ""
		}
		if _, err := syslog.ParseLine(text, time.Now(), nil); err == nil {
			return syslog.Message{Line: text}, ""
		}
		var l syslog.Line
		if app == "" && stalwart.ParseLogFile(&l, text, nil) {
			// a line of Stalwart's own log file (filelog tailing it)
			return syslog.Message{Line: text}, ""
		}
	}
	switch {
	case app == "":
		return syslog.Message{}, ReasonOTLPNoApp
	case host == "" || ts == 0:
		return syslog.Message{}, ReasonOTLPNoTimeHost
	}
	pid := firstAttr(attrs, "proc_id", "syslog.procid", "process.pid")
	if pid == "" {
		pid = res.pid
	}
	// a program name with a space or '[' (not a syslog tag) is cut there
	if i := strings.IndexAny(app, " [:"); i >= 0 {
		app = app[:i]
	}
	f := &syslog.Fields{Time: ts.AsTime().UTC(), Host: strings.ReplaceAll(host, " ", "_"), App: app, ProcID: pid, Message: text}
	if !digits(pid) {
		f.ProcID = ""
	}
	return syslog.Message{Fields: f}, ""
}

func digits(s string) bool {
	if len(s) == 0 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// stalwartLine writes a Stalwart event as its text tracer does: "LEVEL
// description (event.id) key = value, ...", strings quoted (with \\, \n,
// \r and \t escaped), arrays in brackets. Stalwart's exporter puts only
// the event's own keys in the attributes, with the spanId that ties it to
// its delivery attempt or SMTP session (the text tracer writes the span's
// keys instead).
func stalwartLine(level, desc, event string, attrs pcommon.Map) string {
	var b strings.Builder
	b.WriteString(level)
	b.WriteByte(' ')
	b.WriteString(desc)
	b.WriteString(" (")
	b.WriteString(event)
	b.WriteByte(')')
	first := true
	attrs.Range(func(k string, v pcommon.Value) bool {
		if first {
			b.WriteByte(' ')
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(" = ")
		writeStalwartValue(&b, v, 0)
		return true
	})
	return b.String()
}

func writeStalwartValue(b *strings.Builder, v pcommon.Value, depth int) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b.WriteByte('"')
		s := v.Str()
		for i := 0; i < len(s); i++ {
			switch c := s[i]; c {
			case '\r':
				b.WriteString(`\r`)
			case '\n':
				b.WriteString(`\n`)
			case '\t':
				b.WriteString(`\t`)
			case '\\':
				b.WriteString(`\\`)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	case pcommon.ValueTypeSlice:
		b.WriteByte('[')
		sl := v.Slice()
		for i := 0; i < sl.Len(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			if depth < 4 {
				writeStalwartValue(b, sl.At(i), depth+1)
			}
		}
		b.WriteByte(']')
	case pcommon.ValueTypeEmpty:
		b.WriteString("(null)")
	default:
		b.WriteString(v.AsString())
	}
}

// recordSample is the start of a rejected record, for the log.
func recordSample(lr plog.LogRecord) string {
	s := bodyText(lr)
	if s == "" {
		s = "(body " + lr.Body().Type().String() + ")"
	}
	return s[:min(len(s), sampleBytes)]
}
