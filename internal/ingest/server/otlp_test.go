package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// otlpLine is one log line as the Collector's syslog receiver (or the
// filelog receiver's syslog_parser operator) makes a log record of it.
type otlpLine struct {
	t               time.Time
	host, app, pid  string
	msg             string
	asSyslogReceive bool // the parsed fields as attributes (else: the resource says host and program, the body is the message)
}

func (l otlpLine) raw() string {
	return l.t.Format(time.Stamp) + " " + l.host + " " + l.app + "[" + l.pid + "]: " + l.msg
}

// postfixMessage is the four lines of one delivered message.
func postfixMessage(t0 time.Time, host, qid, sender, rcpt string) []otlpLine {
	return []otlpLine{
		{t0, host, "postfix/smtpd", "101", qid + ": client=mx.example.net[192.0.2.1]", true},
		{t0.Add(time.Second), host, "postfix/qmgr", "102", qid + ": from=<" + sender + ">, size=1234, nrcpt=1 (queue active)", true},
		{t0.Add(2 * time.Second), host, "postfix/smtp", "103", qid + ": to=<" + rcpt + ">, relay=r[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 ok)", true},
		{t0.Add(2 * time.Second), host, "postfix/qmgr", "102", qid + ": removed", true},
	}
}

// syslogReceiverLogs builds a batch with the Collector's own data model:
// one ResourceLogs per line's resource, a ScopeLogs, and a LogRecord per
// line with the raw line as its body and the syslog receiver's
// attributes (appname, hostname, proc_id, message, priority, facility), or
// for a line not asSyslogReceive, host.name and service.name on the
// resource and the message as the body.
func syslogReceiverLogs(lines []otlpLine) plog.Logs {
	ld := plog.NewLogs()
	for _, l := range lines {
		rl := ld.ResourceLogs().AppendEmpty()
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("github.com/open-telemetry/opentelemetry-collector-contrib/receiver/syslogreceiver")
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(l.t))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(l.t.Add(time.Second)))
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetSeverityText("info")
		if l.asSyslogReceive {
			lr.Body().SetStr(l.raw())
			a := lr.Attributes()
			a.PutStr("appname", l.app)
			a.PutStr("hostname", l.host)
			a.PutStr("proc_id", l.pid)
			a.PutStr("message", l.msg)
			a.PutInt("priority", 22)
			a.PutStr("facility", "mail")
		} else {
			rl.Resource().Attributes().PutStr("host.name", l.host)
			rl.Resource().Attributes().PutStr("service.name", l.app)
			pid, _ := strconv.Atoi(l.pid)
			rl.Resource().Attributes().PutInt("process.pid", int64(pid))
			lr.Body().SetStr(l.msg)
		}
	}
	return ld
}

func marshalLogs(t testing.TB, ld plog.Logs, json bool) []byte {
	t.Helper()
	req := plogotlp.NewExportRequestFromLogs(ld)
	var b []byte
	var err error
	if json {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type otlpAnswer struct {
	code       int
	retryAfter string
	resp       plogotlp.ExportResponse // a 200's
	status     *spb.Status             // an error's
}

// postOTLP sends a body to /v1/logs as an OTLP/HTTP exporter does.
func postOTLP(t testing.TB, c *http.Client, base, token, ctype string, gz bool, body []byte) otlpAnswer {
	t.Helper()
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = b.Bytes()
	}
	req, err := http.NewRequest("POST", base+OTLPLogsPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := otlpAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	json := resp.Header.Get("Content-Type") == ctJSON
	if resp.StatusCode == http.StatusOK {
		a.resp = plogotlp.NewExportResponse()
		if json {
			err = a.resp.UnmarshalJSON(b)
		} else {
			err = a.resp.UnmarshalProto(b)
		}
		if err != nil {
			t.Fatalf("a 200 whose body is not an ExportLogsServiceResponse: %v: %q", err, b)
		}
		return a
	}
	a.status = &spb.Status{}
	if json {
		err = protojson.Unmarshal(b, a.status)
	} else {
		err = proto.Unmarshal(b, a.status)
	}
	if err != nil {
		t.Fatalf("a %d whose body is not a google.rpc.Status: %v: %q", resp.StatusCode, err, b)
	}
	return a
}

// OpenTelemetry logs over OTLP/HTTP with TLS and the bearer token, into
// an ingester with a write-ahead log on SQLite: batches built with pdata
// as the Collector's syslog receiver builds them, sent as protobuf and as
// JSON (gzip too), each message Delivered; the records that cannot be used
// are rejected in partial_success while the rest is kept; a wrong token,
// a body that does not decode, another Content-Type, too many records and
// values nested too deep are refused with a google.rpc.Status.
func TestOTLPLogs(t *testing.T) {
	p := newPKI(t)
	st := openStore(t)
	dir := t.TempDir()
	const token = "otlp-SECRET-token"
	r := start(t, st, Options{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, Token: token, MaxRecordsPerRequest: 50,
		Pipeline: PipelineOptions{StateFile: filepath.Join(dir, "state.json"), WALDir: filepath.Join(dir, "wal")}})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS()}}
	base := "https://" + r.s.Addr("http").String()
	t0 := time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC)

	cases := []struct {
		name  string
		json  bool
		gzip  bool
		lines []otlpLine
		rcpt  string
	}{
		{"protobuf, syslog receiver attributes", false, false, postfixMessage(t0, "mx1", "4PbC4x469Jz3tBr", "a@example.net", "p@example.com"), "p@example.com"},
		{"JSON, syslog receiver attributes", true, false, postfixMessage(t0.Add(time.Minute), "mx1", "4PbC4x469Jz3tBs", "b@example.net", "j@example.com"), "j@example.com"},
		{"protobuf gzip, resource host.name and service.name", false, true, func() []otlpLine {
			ls := postfixMessage(t0.Add(2*time.Minute), "mx2", "4PbC4x469Jz3tBt", "c@example.net", "r@example.com")
			for i := range ls {
				ls[i].asSyslogReceive = false
			}
			return ls
		}(), "r@example.com"},
		{"JSON gzip", true, true, postfixMessage(t0.Add(3*time.Minute), "mx2", "4PbC4x469Jz3tBu", "d@example.net", "g@example.com"), "g@example.com"},
	}
	for _, tc := range cases {
		ctype := ctProtobuf
		if tc.json {
			ctype = ctJSON
		}
		a := postOTLP(t, c, base, token, ctype, tc.gzip, marshalLogs(t, syslogReceiverLogs(tc.lines), tc.json))
		if a.code != http.StatusOK {
			t.Fatalf("%s: %d %v", tc.name, a.code, a.status)
		}
		if n := a.resp.PartialSuccess().RejectedLogRecords(); n != 0 {
			t.Errorf("%s: %d records rejected: %s", tc.name, n, a.resp.PartialSuccess().ErrorMessage())
		}
		rows := waitStatus(t, st, tc.rcpt, mailflow.StatusDelivered)
		for _, row := range rows {
			if row.Recipient == tc.rcpt && (row.Sender == "" || !strings.Contains(tc.lines[1].msg, "from=<"+row.Sender+">")) {
				t.Errorf("%s: row %+v", tc.name, row)
			}
		}
	}

	// Stalwart's own OpenTelemetry exporter: the event id as EventName,
	// its description as the body, its own keys (with the span id) as
	// attributes, service.name stalwart and no host
	sw := plog.NewLogs()
	rl := sw.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "stalwart")
	rl.Resource().Attributes().PutStr("service.version", "0.12.4")
	swl := rl.ScopeLogs().AppendEmpty()
	swl.Scope().SetName("stalwart")
	for i, e := range []struct {
		id, desc string
		attrs    func(pcommon.Map)
	}{
		{"smtp.connection-start", "SMTP connection started", func(a pcommon.Map) {
			a.PutStr("listenerId", "smtp")
			a.PutInt("localPort", 25)
			a.PutStr("remoteIp", "192.0.2.44")
			a.PutInt("remotePort", 50123)
			a.PutInt("spanId", 7001)
		}},
		{"queue.queue-message", "Queued message for delivery", func(a pcommon.Map) {
			a.PutInt("spanId", 7001)
			a.PutInt("queueId", 219819146581090473)
			a.PutStr("from", "sw@example.net")
			a.PutEmptySlice("to").AppendEmpty().SetStr("stalwart-user@example.com")
			a.PutInt("size", 2048)
		}},
		{"delivery.attempt-start", "Delivery attempt started", func(a pcommon.Map) {
			a.PutInt("spanId", 8001)
			a.PutInt("queueId", 219819146581090473)
			a.PutStr("from", "sw@example.net")
			a.PutEmptySlice("to").AppendEmpty().SetStr("stalwart-user@example.com")
			a.PutInt("size", 2048)
			a.PutInt("total", 1)
		}},
		{"message-ingest.ham", "Message ingested", func(a pcommon.Map) {
			a.PutInt("spanId", 8001)
			a.PutInt("accountId", 3)
			a.PutStr("messageId", "<sw1@example.net>")
		}},
		{"delivery.dsn-success", "DSN success notification", func(a pcommon.Map) {
			a.PutInt("spanId", 8001)
			a.PutStr("to", "stalwart-user@example.com")
			a.PutStr("hostname", "localhost")
			a.PutInt("code", 250)
			a.PutStr("details", "OK")
		}},
	} {
		lr := swl.LogRecords().AppendEmpty()
		lr.SetEventName(e.id)
		lr.SetSeverityText("INFO")
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.Body().SetStr(e.desc)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(10+i) * time.Second)))
		e.attrs(lr.Attributes())
	}
	if a := postOTLP(t, c, base, token, ctProtobuf, false, marshalLogs(t, sw, false)); a.code != http.StatusOK || a.resp.PartialSuccess().RejectedLogRecords() != 0 {
		t.Fatalf("Stalwart's records: %d %v %q", a.code, a.status, a.resp.PartialSuccess().ErrorMessage())
	}
	for _, row := range waitStatus(t, st, "stalwart-user@example.com", mailflow.StatusDelivered) {
		if row.Recipient == "stalwart-user@example.com" && (row.Sender != "sw@example.net" || row.FromIP != "192.0.2.44" || row.MessageID != "sw1@example.net") {
			t.Errorf("Stalwart's row %+v", row)
		}
	}

	// records it cannot use: rejected, the others kept
	partial := syslogReceiverLogs(postfixMessage(t0.Add(4*time.Minute), "mx3", "4PbC4x469Jz3tBv", "e@example.net", "k@example.com"))
	sl := partial.ResourceLogs().At(0).ScopeLogs().At(0)
	sl.LogRecords().AppendEmpty() // no body at all
	noApp := sl.LogRecords().AppendEmpty()
	noApp.Body().SetStr("a message without a program")
	noApp.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	a := postOTLP(t, c, base, token, ctProtobuf, false, marshalLogs(t, partial, false))
	if a.code != http.StatusOK || a.resp.PartialSuccess().RejectedLogRecords() != 2 ||
		!strings.Contains(a.resp.PartialSuccess().ErrorMessage(), ReasonEmptyRecord) || !strings.Contains(a.resp.PartialSuccess().ErrorMessage(), ReasonOTLPNoApp) {
		t.Errorf("a batch with 2 unusable records: %d, partial success %d %q", a.code, a.resp.PartialSuccess().RejectedLogRecords(), a.resp.PartialSuccess().ErrorMessage())
	}
	waitStatus(t, st, "k@example.com", mailflow.StatusDelivered)

	good := marshalLogs(t, syslogReceiverLogs(postfixMessage(t0.Add(5*time.Minute), "mx3", "4PbC4x469Jz3tBw", "f@example.net", "z@example.com")), false)
	tooMany := syslogReceiverLogs(nil)
	for i := 0; i < 51; i++ {
		tooMany.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("x")
	}
	deep := plog.NewLogs()
	v := deep.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body()
	for i := 0; i < 100; i++ {
		v = v.SetEmptySlice().AppendEmpty()
	}
	for _, bad := range []struct {
		name, token, ctype string
		body               []byte
		code               int
		msg                string
	}{
		{"no token", "", ctProtobuf, good, http.StatusUnauthorized, "unauthorized"},
		{"wrong token", "wrong-SECRET", ctJSON, good, http.StatusUnauthorized, "unauthorized"},
		{"not protobuf", token, ctProtobuf, []byte("\xff\xff\xff\xff garbage"), http.StatusBadRequest, "not an OTLP"},
		{"not JSON", token, ctJSON, []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":`), http.StatusBadRequest, "not an OTLP"},
		{"plain text", token, "text/plain", good, http.StatusUnsupportedMediaType, "application/x-protobuf"},
		{"too many records", token, ctProtobuf, marshalLogs(t, tooMany, false), http.StatusRequestEntityTooLarge, "--max-records-per-request"},
		{"nested 100 deep, protobuf", token, ctProtobuf, marshalLogs(t, deep, false), http.StatusBadRequest, "nested deeper"},
		{"nested 100 deep, JSON", token, ctJSON, marshalLogs(t, deep, true), http.StatusBadRequest, "nested deeper"},
	} {
		a := postOTLP(t, c, base, bad.token, bad.ctype, false, bad.body)
		if a.code != bad.code || !strings.Contains(a.status.GetMessage(), bad.msg) {
			t.Errorf("%s: %d %q, want %d %q", bad.name, a.code, a.status.GetMessage(), bad.code, bad.msg)
		}
	}
	if rows := allRows(t, st); strings.Contains(rowsString(rows), "z@example.com") {
		t.Errorf("a refused request was stored:\n%s", rowsString(rows))
	}
	if n := metricValue(r.s.Metrics.Refused.WithLabelValues(ReasonUnauthorized, "otlp")); n != 2 {
		t.Errorf("refused{unauthorized,otlp} = %v, want 2", n)
	}
}

// With the store down the write-ahead log fills: OTLP requests are
// answered 200 while their lines fit in it, then 503 with Retry-After (an
// OTLP exporter retries those), nothing of a refused one kept; once the
// store is back, the retried request is taken and every message stored.
func TestOTLPWALFull(t *testing.T) {
	dir := t.TempDir()
	st := &gatedStore{Store: openStore(t), open: make(chan struct{})}
	r := start(t, st, Options{InsecureNoAuth: true, Pipeline: PipelineOptions{
		Correlator: crashCorr, StateFile: filepath.Join(dir, "state.json"), WALDir: filepath.Join(dir, "wal"),
		WALMaxBytes: 16 << 10, WALSegmentBytes: 4 << 10, StateInterval: 100 * time.Millisecond,
	}})
	base := "http://" + r.s.Addr("http").String()
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	batch := func(i int) []byte {
		return marshalLogs(t, syslogReceiverLogs(postfixMessage(t0.Add(time.Duration(i)*time.Second), "mx", fmt.Sprintf("4PbC4x469Jz%05d", i),
			"s@example.net", fmt.Sprintf("r%d@example.com", i))), i%2 == 1)
	}
	ctype := func(i int) string { return map[bool]string{false: ctProtobuf, true: ctJSON}[i%2 == 1] }
	accepted := 0
	var refused *otlpAnswer
	for i := 0; i < 1000 && refused == nil; i++ {
		a := postOTLP(t, http.DefaultClient, base, "", ctype(i), false, batch(i))
		switch a.code {
		case http.StatusOK:
			accepted++
		case http.StatusServiceUnavailable:
			refused = &a
		default:
			t.Fatalf("batch %d: %d %v", i, a.code, a.status)
		}
	}
	if refused == nil || accepted == 0 {
		t.Fatalf("%d batches accepted, none refused, with the store down and a 16 KiB log", accepted)
	}
	if refused.retryAfter == "" || !strings.Contains(refused.status.GetMessage(), "write-ahead log is full") {
		t.Errorf("503 without Retry-After, or saying %q", refused.status.GetMessage())
	}
	close(st.open)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if a := postOTLP(t, http.DefaultClient, base, "", ctype(accepted), false, batch(accepted)); a.code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retried batch is still refused 30 s after the store came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	from, to := t0.Add(-time.Hour), t0.Add(time.Hour)
	for {
		d, total := countStatus(t, st, from, to, mailflow.StatusDelivered)
		if d == int64(accepted+1) && total == d {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages Delivered (%d rows)", d, accepted+1, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d OTLP batches accepted while the store was down, then 503 with Retry-After at the 16 KiB cap; all %d stored once it was back", accepted, accepted+1)
}

// otlpShapes are bodies of every shape the cost walk must bound: real
// records, and what a hostile sender packs into a body.
func otlpShapes(t testing.TB) map[string]plog.Logs {
	shapes := map[string]plog.Logs{}
	var lines []otlpLine
	t0 := time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 100; i++ {
		lines = append(lines, postfixMessage(t0, "mx", fmt.Sprintf("4PbC4x469Jz%05d", i), "a@example.net", "b@example.com")...)
	}
	shapes["400 syslog receiver records"] = syslogReceiverLogs(lines)
	empty := plog.NewLogs()
	lrs := empty.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := 0; i < 10000; i++ {
		lrs.AppendEmpty()
	}
	shapes["10000 empty records"] = empty
	attrs := plog.NewLogs()
	a := attrs.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Attributes()
	for i := 0; i < 10000; i++ {
		a.PutEmpty(strconv.Itoa(i))
	}
	shapes["a record with 10000 empty attributes"] = attrs
	res := plog.NewLogs()
	for i := 0; i < 3000; i++ {
		rl := res.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutEmpty("")
		rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	}
	shapes["3000 resources of one record"] = res
	arr := plog.NewLogs()
	sl := arr.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetEmptySlice()
	for i := 0; i < 10000; i++ {
		sl.AppendEmpty()
	}
	shapes["a body of 10000 empty values"] = arr
	nested := plog.NewLogs()
	v := nested.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body()
	for i := 0; i < 50; i++ {
		m := v.SetEmptyMap()
		m.PutStr("k", "v")
		v = m.PutEmpty("n")
	}
	shapes["values nested 50 deep"] = nested
	return shapes
}

// allocated returns the bytes pdata allocates to decode b.
func allocated(b []byte, json bool) (uint64, error) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	req := plogotlp.NewExportRequest()
	var err error
	if json {
		err = req.UnmarshalJSON(b)
	} else {
		err = req.UnmarshalProto(b)
	}
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(req)
	return m1.TotalAlloc - m0.TotalAlloc, err
}

// The cost the walk counts before a body is decoded is at least what
// pdata allocates to decode it, for bodies of every shape, protobuf and
// JSON; and it counts the records pdata finds.
func TestOTLPCostBoundsDecoding(t *testing.T) {
	for name, ld := range otlpShapes(t) {
		for _, json := range []bool{false, true} {
			b := marshalLogs(t, ld, json)
			var c otlpCost
			var err error
			if json {
				c, err = jsonCost(b)
			} else {
				c, err = protoCost(b)
			}
			if strings.Contains(name, "nested") {
				if err == nil {
					t.Errorf("%s (json %v): not refused", name, json)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s (json %v): %v", name, json, err)
			}
			got, err := allocated(b, json)
			if err != nil {
				t.Fatalf("%s: pdata: %v", name, err)
			}
			if !json && c.records != ld.LogRecordCount() {
				t.Errorf("%s: %d records counted, pdata has %d", name, c.records, ld.LogRecordCount())
			}
			t.Logf("%s (json %v): %d bytes on the wire, pdata allocates %d, the walk counts %d (%.1fx)", name, json, len(b), got, c.bytes, float64(c.bytes)/float64(got))
			if uint64(c.bytes) < got {
				t.Errorf("%s (json %v): the walk counts %d bytes, pdata allocates %d", name, json, c.bytes, got)
			}
		}
	}
}

// The hostile bodies of TestHostileOTLPRSS, in small: the walk refuses a
// value nested a million levels deep, and counts what pdata would make of
// a body of empty attributes, before anything is decoded.
func TestOTLPCostHostile(t *testing.T) {
	if _, err := protoCost(otlpNested(1 << 20)); err != errOTLPDepth {
		t.Errorf("values nested ~250,000 levels deep: %v", err)
	}
	b := otlpEmptyRecords(1<<20, 84)
	c, err := protoCost(b)
	if err != nil {
		t.Fatal(err)
	}
	req := plogotlp.NewExportRequest()
	if err := req.UnmarshalProto(b); err != nil || req.Logs().LogRecordCount() != c.records {
		t.Fatalf("pdata: %v, %d records, the walk %d", err, req.Logs().LogRecordCount(), c.records)
	}
	if attrs := int64(c.records) * 84; c.bytes < attrs*otlpObjectBytes(mKeyValue) {
		t.Errorf("%d records of 84 attributes counted as %d bytes", c.records, c.bytes)
	}
	t.Logf("1 MiB: %d records of 84 empty attributes, %d MiB decoded by the walk's count", c.records, c.bytes>>20)
}

// The OTLP decoder (cost walk, pdata, the mapping to lines) on any body:
// never a panic, and when pdata decodes a protobuf body the walk accepted,
// both count the same records.
func FuzzOTLP(f *testing.F) {
	t0 := time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC)
	ld := syslogReceiverLogs(postfixMessage(t0, "mx", "4PbC4x469Jz3tBr", "a@example.net", "b@example.com"))
	f.Add(marshalLogs(f, ld, false), false)
	f.Add(marshalLogs(f, ld, true), true)
	f.Add([]byte{0x0a, 0x04, 0x12, 0x02, 0x12, 0x00}, false)
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{"body":{"kvlistValue":{}}}]}]}]}`), true)
	s := New(nil, Options{MaxRecordsPerRequest: 1000})
	f.Fuzz(func(t *testing.T, b []byte, json bool) {
		if !json {
			if c, err := protoCost(b); err == nil {
				req := plogotlp.NewExportRequest()
				if req.UnmarshalProto(b) == nil && req.Logs().LogRecordCount() != c.records {
					t.Errorf("the walk counts %d records, pdata %d", c.records, req.Logs().LogRecordCount())
				}
			}
		}
		d, status, _ := s.decodeOTLP(b, json)
		if status == 0 {
			if n, _ := d.droppedText(); n+len(d.msgs) != d.records {
				n, _ := d.droppedText()
				t.Errorf("%d records, %d messages and %d dropped", d.records, len(d.msgs), n)
			}
		}
	})
}
