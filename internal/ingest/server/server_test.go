package server

import (
	"compress/gzip"

	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/source/postfix"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

var testCorr = ingest.Config{AcceptedDomains: []string{"example.com"}, Reference: time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)}

// outOfOrder is one message whose client= line comes after its delivery.
var outOfOrder = []string{
	"Mar  1 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<a@example.net>, size=10, nrcpt=1 (queue active)",
	"Mar  1 10:00:02 mx postfix/smtp[3]: ABCDE12345: to=<b@example.com>, relay=r[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 ok)",
	"Mar  1 10:00:00 mx postfix/smtpd[1]: ABCDE12345: client=mx.example.net[192.0.2.1]",
	"Mar  1 10:00:02 mx postfix/qmgr[2]: ABCDE12345: removed",
}

// viaFilter is one message through a content filter with short queue ids;
// the restart test stops after the first four lines.
var viaFilter = []string{
	"Mar  2 10:00:00 mx postfix/smtpd[1]: 1BCDE12345: client=a.example.net[192.0.2.1]",
	"Mar  2 10:00:01 mx postfix/qmgr[2]: 1BCDE12345: from=<x@example.net>, size=10, nrcpt=1 (queue active)",
	"Mar  2 10:00:02 mx postfix/10025/smtpd[5]: 1EDCB98765: client=localhost[127.0.0.1]",
	"Mar  2 10:00:02 mx postfix/qmgr[2]: 1EDCB98765: from=<x@example.net>, size=12, nrcpt=1 (queue active)",
	"Mar  2 10:00:03 mx postfix/smtp[3]: 1BCDE12345: to=<u@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 1EDCB98765)",
	"Mar  2 10:00:03 mx postfix/qmgr[2]: 1BCDE12345: removed",
	"Mar  2 10:00:04 mx postfix/local[6]: 1EDCB98765: to=<u@example.com>, relay=local, delay=1, dsn=2.0.0, status=sent (delivered to mailbox)",
	"Mar  2 10:00:04 mx postfix/qmgr[2]: 1EDCB98765: removed",
}

// rejected is a message rejected before queueing (one line).
var rejected = "Mar  3 11:00:00 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from bad.example.net[192.0.2.66]: 554 5.7.1 <c@example.com>: Relay access denied; from=<s@example.net> to=<c@example.com> proto=ESMTP helo=<bad>"

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "trace.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type running struct {
	s      *Server
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

// start runs a server on loopback ports; stop (or the test's end) stops it.
func start(t testing.TB, st store.Store, o Options) *running {
	t.Helper()
	if o.SyslogTCP == "" {
		o.SyslogTCP = "127.0.0.1:0"
	}
	if o.HTTP == "" {
		o.HTTP = "127.0.0.1:0"
	}
	if o.TLSClientCAFile == "" {
		// syslog over TCP is always on here, without client certificates
		o.InsecureNoAuth = true
	}
	if o.Pipeline.Correlator.Reference.IsZero() {
		o.Pipeline.Correlator = testCorr
		o.Pipeline.Correlator.AcceptedDomains = append([]string(nil), testCorr.AcceptedDomains...)
	}
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	s := New(st, o)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { r.done <- s.Start(ctx) }()
	if s.Addr("tcp") == nil {
		cancel()
		t.Fatalf("server did not start: %v", <-r.done)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("server stopped with: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("server did not stop")
	}
}

func sendTCP(t testing.TB, addr net.Addr, data string) {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
}

func post(t testing.TB, addr net.Addr, ctype, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+addr.String()+"/ingest", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func allRows(t testing.TB, st store.Store) []mailflow.Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := st.Trace(ctx, mailflow.Query{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 3, 30, 0, 0, 0, 0, time.UTC)}, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	return p.Rows
}

func rowsString(rows []mailflow.Row) string {
	var s []string
	for _, r := range rows {
		s = append(s, fmt.Sprintf("%s %s from=%s to=%s %s %s", r.Received.UTC().Format(time.RFC3339), r.MessageTraceID[:8], r.Sender, r.Recipient, r.Status, r.Direction))
	}
	sort.Strings(s)
	return strings.Join(s, "\n")
}

// eventually polls cond until it holds, failing after a generous bound.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last: %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status waits for the row of a recipient to have a status and returns the rows.
func waitStatus(t testing.TB, st store.Store, rcpt string, want mailflow.Status) []mailflow.Row {
	t.Helper()
	var rows []mailflow.Row
	eventually(t, rcpt+" "+string(want), func() (bool, string) {
		rows = allRows(t, st)
		for _, r := range rows {
			if r.Recipient == rcpt && r.Status == want {
				return true, ""
			}
		}
		return false, rowsString(rows)
	})
	return rows
}

func traceIDs(rows []mailflow.Row) map[string]bool {
	m := map[string]bool{}
	for _, r := range rows {
		m[r.MessageTraceID] = true
	}
	return m
}

// asLines makes messages of lines of a file.
func asLines(lines []string) []syslog.Message {
	out := make([]syslog.Message, len(lines))
	for i, l := range lines {
		out[i] = syslog.Message{Line: l}
	}
	return out
}

func withPRI(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "<22>" + l
	}
	return out
}

func octet(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strconv.Itoa(len(l)) + " " + l)
	}
	return b.String()
}

// rfc5424 rewrites an RFC 3164 test line of year 2024 as an RFC 5424 message.
func to5424(t testing.TB, l string) string {
	t.Helper()
	ts, err := time.Parse(time.Stamp, l[:15])
	if err != nil {
		t.Fatal(err)
	}
	ts = ts.AddDate(2024, 0, 0)
	rest := l[16:]                          // host prog[pid]: msg
	host, rest, _ := strings.Cut(rest, " ") // prog[pid]: msg
	tag, msg, _ := strings.Cut(rest, ": ")
	prog, pid, _ := strings.Cut(strings.TrimSuffix(tag, "]"), "[")
	return fmt.Sprintf("<22>1 %s %s %s %s - [meta x=\"1\"] %s", ts.Format(time.RFC3339), host, prog, pid, msg)
}

// Lines over TCP syslog, in each framing and header form, become messages
// with their status: newline-framed RFC 3164 with <PRI>, octet-counted RFC
// 5424, and lines out of order within the link window.
func TestTCPSyslog(t *testing.T) {
	st := openStore(t)
	r := start(t, st, Options{})
	sendTCP(t, r.s.Addr("tcp"), strings.Join(withPRI(outOfOrder), "\n")+"\n")
	var v []string
	for _, l := range viaFilter {
		v = append(v, to5424(t, l))
	}
	sendTCP(t, r.s.Addr("tcp"), octet(v))
	waitStatus(t, st, "b@example.com", mailflow.StatusDelivered)
	rows := waitStatus(t, st, "u@example.com", mailflow.StatusDelivered)
	if n := len(traceIDs(rows)); n != 2 {
		t.Errorf("%d messages, want 2 (one per lifecycle, the filter hop joined):\n%s", n, rowsString(rows))
	}
	for _, row := range rows {
		if row.Recipient == "b@example.com" && !row.Received.Equal(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("received %s, want the client= line's time though it came third", row.Received)
		}
		if row.Direction != mailflow.DirectionInbound {
			t.Errorf("%s: direction %s", row.Recipient, row.Direction)
		}
	}
	if got := val(r.s.Metrics.LinesRead.WithLabelValues("tcp")); got != float64(len(outOfOrder)+len(viaFilter)) {
		t.Errorf("lines read metric %v", got)
	}
	if val(r.s.Metrics.EventsWritten) == 0 || val(r.s.Metrics.Lag) == 0 {
		t.Error("events written / lag not recorded")
	}
}

// The second hop of a content filter arrives before the line of the first
// hop that links them (PMG after-queue filtering): still one message.
func TestLinkArrivesLate(t *testing.T) {
	st := openStore(t)
	r := start(t, st, Options{})
	lines := []string{
		"Jan 21 07:33:20 pmghost postfix/smtpd[29361]: DEF2520A69: client=mx.example.net[192.0.2.1]",
		"Jan 21 07:33:20 pmghost postfix/qmgr[529]: DEF2520A69: from=<a@example.net>, size=161138, nrcpt=1 (queue active)",
		"Jan 21 07:33:21 pmghost pmg-smtp-filter[28437]: 20A9560092030F3374: new mail message-id=<m@x>#012",
		"Jan 21 07:33:24 pmghost postfix/smtpd[29375]: A673520AB5: client=localhost[127.0.0.1], orig_client=mx.example.net[192.0.2.1]",
		"Jan 21 07:33:24 pmghost pmg-smtp-filter[28437]: 20A9560092030F3374: accept mail to <b@example.com> (A673520AB5) (rule: default-accept)",
		"Jan 21 07:33:24 pmghost postfix/qmgr[529]: A673520AB5: from=<a@example.net>, size=162287, nrcpt=1 (queue active)",
		"Jan 21 07:33:24 pmghost postfix/smtp[29376]: A673520AB5: to=<b@example.com>, relay=192.0.2.2[192.0.2.2]:25, delay=0.07, delays=0.06/0/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as B6B682E547)",
		"Jan 21 07:33:24 pmghost postfix/qmgr[529]: A673520AB5: removed",
	}
	late := []string{
		"Jan 21 07:33:24 pmghost postfix/lmtp[29365]: DEF2520A69: to=<b@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=3.9, delays=0.05/0.04/0.01/3.8, dsn=2.5.0, status=sent (250 2.5.0 OK (20A9560092030F3374))",
		"Jan 21 07:33:24 pmghost postfix/qmgr[529]: DEF2520A69: removed",
	}
	sendTCP(t, r.s.Addr("tcp"), strings.Join(lines, "\n")+"\n")
	// the late lines come in another request, over HTTP
	if code, body := post(t, r.s.Addr("http"), "text/plain", "", strings.Join(late, "\n")); code != http.StatusNoContent {
		t.Fatalf("POST: %d %s", code, body)
	}
	rows := waitStatus(t, st, "b@example.com", mailflow.StatusDelivered)
	if n := len(traceIDs(rows)); n != 1 {
		t.Errorf("%d messages, want 1:\n%s", n, rowsString(rows))
	}
}

// HTTP POSTs in every shape: raw lines, Fluent Bit's JSON array with
// "date"/"log", a single {"message": ...}, Vector's NDJSON of parsed
// syslog records, gzip; the answer comes once the events are stored.
func TestHTTPShapes(t *testing.T) {
	st := openStore(t)
	r := start(t, st, Options{})
	a := r.s.Addr("http")
	check := func(code int, body string) {
		t.Helper()
		if code != http.StatusNoContent {
			t.Fatalf("POST: %d %s", code, body)
		}
	}
	// Fluent Bit tail: [{"date": 1.7e9, "log": "<whole line>"}]
	var fb []string
	for _, l := range outOfOrder {
		fb = append(fb, fmt.Sprintf(`{"date":1709287200.123,"log":%q}`, l))
	}
	check(post(t, a, "application/json", "", "["+strings.Join(fb, ",")+"]"))
	// answered after the store has the events: no polling needed
	if rows := allRows(t, st); len(rows) != 1 || rows[0].Status != mailflow.StatusDelivered {
		t.Fatalf("after the 204: %s", rowsString(rows))
	}
	// a single Fluent Bit syslog-input record with a <PRI> line
	check(post(t, a, "application/json", "", fmt.Sprintf(`{"message":%q}`, "<22>"+rejected)))
	// Vector syslog source, NDJSON: the message without its header
	var vec []string
	for _, l := range viaFilter {
		ts, _ := time.Parse(time.Stamp, l[:15])
		ts = ts.AddDate(2024, 0, 0)
		rest := l[16:]
		host, rest, _ := strings.Cut(rest, " ")
		tag, msg, _ := strings.Cut(rest, ": ")
		prog, pid, _ := strings.Cut(strings.TrimSuffix(tag, "]"), "[")
		vec = append(vec, fmt.Sprintf(`{"message":%q,"timestamp":%q,"hostname":%q,"appname":%q,"procid":%s,"source_type":"syslog"}`,
			msg, ts.Format(time.RFC3339Nano), host, prog, pid))
	}
	check(post(t, a, "application/x-ndjson", "", strings.Join(vec, "\n")+"\n"))
	rows := allRows(t, st)
	got := map[string]mailflow.Status{}
	for _, row := range rows {
		got[row.Recipient] = row.Status
	}
	want := map[string]mailflow.Status{"b@example.com": mailflow.StatusDelivered, "c@example.com": mailflow.StatusFilteredAsSpam, "u@example.com": mailflow.StatusDelivered}
	if fmt.Sprint(got) != fmt.Sprint(want) && !(got["b@example.com"] == mailflow.StatusDelivered && got["u@example.com"] == mailflow.StatusDelivered && got["c@example.com"] != "") {
		t.Errorf("rows:\n%s", rowsString(rows))
	}
	if n := len(traceIDs(rows)); n != 3 {
		t.Errorf("%d messages, want 3:\n%s", n, rowsString(rows))
	}
	// gzip body
	var zb bytes.Buffer
	zw := newGzip(&zb)
	_, _ = zw.Write([]byte(strings.Join(outOfOrder, "\n")))
	_ = zw.Close()
	req, _ := http.NewRequest("POST", "http://"+a.String()+"/", &zb)
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("gzip POST: %d", resp.StatusCode)
	}
}

// The bearer token comes from a file (a mounted Secret) and is re-read when
// the file changes; a wrong or missing token is refused and counted.
func TestHTTPToken(t *testing.T) {
	st := openStore(t)
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, st, Options{TokenFile: tf})
	a := r.s.Addr("http")
	for _, tok := range []string{"", "wrong", "s3cre", "s3cret2"} {
		if code, _ := post(t, a, "text/plain", tok, outOfOrder[0]); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
	if code, body := post(t, a, "text/plain", "s3cret", outOfOrder[0]); code != http.StatusNoContent {
		t.Errorf("right token: %d %s", code, body)
	}
	if got := val(r.s.Metrics.NotUnderstood.WithLabelValues(ReasonUnauthorized)); got != 4 {
		t.Errorf("unauthorized counted %v times, want 4", got)
	}
	// rotation: a new Secret value replaces the old one
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	if err := os.WriteFile(tf, []byte("rotated-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, a, "text/plain", "s3cret", outOfOrder[1]); code != http.StatusUnauthorized {
		t.Errorf("old token after rotation: %d", code)
	}
	if code, _ := post(t, a, "text/plain", "rotated-token", outOfOrder[1]); code != http.StatusNoContent {
		t.Errorf("new token after rotation: %d", code)
	}
}

// Bad input of every kind, over TCP and HTTP: counted by reason, never a
// crash, never a stall: a good message sent after it is still stored.
func TestBadInput(t *testing.T) {
	st := openStore(t)
	r := start(t, st, Options{MaxLineBytes: 16 << 10, MaxRequestBytes: 4 << 20})
	tcp, h := r.s.Addr("tcp"), r.s.Addr("http")
	mib := strings.Repeat("A", 1<<20)
	binary := string([]byte{0, 1, 2, 0xff, 0xfe, 0x80, '\r', 7, 8})
	bad := []string{
		"garbage garbage garbage",
		binary,
		"Mar  1 10:00:05 mx postfix/smtpd[1]: \xff\xfe\xc3(: client=odd",
		"Mar  1 10:00:05 mx CRON[77]: (root) CMD (run-parts /etc/cron.hourly)",
		"Mar  1 10:00:05 mx postfix/weird[7]: something else entirely",
		"Mar  1 10:00:05 mx postfix/cleanup[7]: 0FEDC12345: frobnicated: odd things",
		"<999999>",
		"<22>1 - - - - - -",
	}
	// TCP: each bad thing, a 1 MiB line, an octet-counted frame over the
	// limit, then a connection that ends in the middle of a line
	sendTCP(t, tcp, strings.Join(bad, "\n")+"\n"+mib+"\n"+"2000000 "+mib[:1000])
	sendTCP(t, tcp, "Mar  1 10:00:06 mx postfix/qmgr[2]: HALF")
	// HTTP: the same as text, a body with a 1 MiB line, bad JSON after a
	// good record, JSON that is not a record, and a body over the limit
	if code, body := post(t, h, "text/plain", "", strings.Join(bad, "\n")+"\n"+mib); code != http.StatusNoContent {
		t.Errorf("bad lines as text: %d %s", code, body)
	}
	if code, _ := post(t, h, "application/json", "", `[{"log":"`+outOfOrder[0]+`"}, {"log": tru`); code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d, want 400", code)
	}
	if code, body := post(t, h, "application/json", "", `[1, null, {"other":"x"}, "\u0000\u0001\u00ff"]`); code != http.StatusOK || !strings.Contains(body, "dropped 3 (record without a message: 3)") {
		t.Errorf("records without messages: %d %q, want 200 saying what was dropped", code, body)
	}
	if code, _ := post(t, h, "text/plain", "", strings.Repeat(mib+"\n", 5)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("5 MiB body: %d, want 413", code)
	}
	// and then a good message, over both
	sendTCP(t, tcp, strings.Join(outOfOrder, "\n")+"\n")
	if code, body := post(t, h, "text/plain", "", strings.Join(viaFilter, "\n")); code != http.StatusNoContent {
		t.Fatalf("good POST after bad input: %d %s", code, body)
	}
	waitStatus(t, st, "b@example.com", mailflow.StatusDelivered)
	waitStatus(t, st, "u@example.com", mailflow.StatusDelivered)
	m := r.s.Metrics.NotUnderstood
	eventually(t, "every reason counted", func() (bool, string) {
		var missing []string
		for _, reason := range []string{ingest.ReasonNotSyslog, ingest.ReasonNotPostfix, postfix.ReasonUnknownLine, ingest.ReasonTooLong,
			ReasonFrameTooLong, ReasonHalfLine, ReasonBadJSON, ReasonRequestTooBig, ReasonEmptyRecord} {
			if val(m.WithLabelValues(reason)) == 0 {
				missing = append(missing, reason)
			}
		}
		return len(missing) == 0, fmt.Sprint("not counted: ", missing)
	})
}

// UDP datagrams (one or several lines each) and TCP over TLS.
func TestUDPAndTLS(t *testing.T) {
	st := openStore(t)
	cert, key := selfSigned(t)
	r := start(t, st, Options{SyslogUDP: "127.0.0.1:0", TLSCertFile: cert, TLSKeyFile: key})
	u, err := net.Dial("udp", r.s.Addr("udp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, l := range withPRI(outOfOrder[:2]) {
		if _, err := u.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := u.Write([]byte(strings.Join(withPRI(outOfOrder[2:]), "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", r.s.Addr("tcp").String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(octet(withPRI(viaFilter)))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitStatus(t, st, "u@example.com", mailflow.StatusDelivered)
	// UDP may drop datagrams on a busy machine: the test resends until the message is whole
	eventually(t, "udp message delivered", func() (bool, string) {
		for _, row := range allRows(t, st) {
			if row.Recipient == "b@example.com" && row.Status == mailflow.StatusDelivered {
				return true, ""
			}
		}
		_, _ = u.Write([]byte(strings.Join(outOfOrder, "\n")))
		return false, rowsString(allRows(t, st))
	})
	if val(r.s.Metrics.LinesRead.WithLabelValues("tls")) != float64(len(viaFilter)) {
		t.Error("TLS lines not counted as tls")
	}
}

func selfSigned(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// A state file that cannot be restored (damaged, or of a source this
// build lacks) is set aside as .bad, and the ingester starts afresh.
func TestBadStateFile(t *testing.T) {
	for name, content := range map[string]string{
		"damaged":        `{"version": 2, "sources": {"postfix": {"traces": [`,
		"unknown source": `{"version": 2, "sources": {"sendmail": {}}}`,
		"bad trace":      `{"version": 1, "messages": [{"host": "mx", "queueId": "ABCDE12345", "traceId": "nowhere"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			stateFile := filepath.Join(t.TempDir(), "ingest-state.json")
			if err := os.WriteFile(stateFile, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			st := openStore(t)
			r := start(t, st, Options{Pipeline: PipelineOptions{StateFile: stateFile}})
			if b, err := os.ReadFile(stateFile + ".bad"); err != nil || string(b) != content {
				t.Errorf("the state file was not set aside: %v", err)
			}
			sendTCP(t, r.s.Addr("tcp"), strings.Join(outOfOrder, "\n")+"\n")
			waitStatus(t, st, "b@example.com", mailflow.StatusDelivered)
			r.stop(t)
		})
	}
}

// A restart of the ingester in the middle of a message's lifecycle (after
// the first hop of a filtered message with short queue ids, its second hop
// held for its link) loses nothing: with the state file, the later lines
// join the message, and the store ends as if nothing had happened.
func TestRestartMidLifecycle(t *testing.T) {
	stateFile := filepath.Join(t.TempDir(), "ingest-state.json")
	st := openStore(t)
	r := start(t, st, Options{Pipeline: PipelineOptions{StateFile: stateFile}})
	if code, body := post(t, r.s.Addr("http"), "text/plain", "", strings.Join(viaFilter[:4], "\n")); code != http.StatusNoContent {
		t.Fatalf("POST: %d %s", code, body)
	}
	before := allRows(t, st)
	r.stop(t)
	if _, err := os.Stat(stateFile); err != nil {
		t.Fatalf("no state saved at shutdown: %v", err)
	}
	r2 := start(t, st, Options{Pipeline: PipelineOptions{StateFile: stateFile}})
	sendTCP(t, r2.s.Addr("tcp"), strings.Join(viaFilter[4:], "\n")+"\n")
	rows := waitStatus(t, st, "u@example.com", mailflow.StatusDelivered)
	if len(before) != 1 || len(rows) != 1 || rows[0].MessageTraceID != before[0].MessageTraceID {
		t.Errorf("before the restart:\n%s\nafter:\n%s\nwant one message that keeps its trace ID", rowsString(before), rowsString(rows))
	}
	// the same lines read in one go give the same store
	ref := openStore(t)
	if _, err := IngestFiles(context.Background(), ref, []string{writeLines(t, viaFilter)}, FileOptions{Pipeline: PipelineOptions{Correlator: testCorr}}); err != nil {
		t.Fatal(err)
	}
	r2.stop(t)
	if a, b := dump(t, st), dump(t, ref); a != b {
		t.Errorf("restarted:\n%s\nin one go:\n%s", a, b)
	}
}

func writeLines(t testing.TB, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dump is every row and every event of a store, as text.
func dump(t testing.TB, st store.Store) string {
	t.Helper()
	var b strings.Builder
	rows := allRows(t, st)
	b.WriteString(rowsString(rows))
	for _, r := range rows {
		evs, err := st.Events(context.Background(), r.MessageTraceID, r.Recipient)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			fmt.Fprintf(&b, "\n%s %s %s %s %s", e.ID, e.Time.UTC().Format(time.RFC3339Nano), e.Type, e.Recipient, e.Detail)
		}
	}
	return b.String()
}

// Replaying the same lines twice (a backfill read again, a POST retried)
// changes nothing in the store.
func TestReplayChangesNothing(t *testing.T) {
	lines := append(append(append([]string{}, outOfOrder...), viaFilter...), rejected)
	st := openStore(t)
	f := writeLines(t, lines)
	o := FileOptions{Pipeline: PipelineOptions{Correlator: testCorr}}
	s1, err := IngestFiles(context.Background(), st, []string{f}, o)
	if err != nil {
		t.Fatal(err)
	}
	once := dump(t, st)
	if s1.Events == 0 || !strings.Contains(once, "Delivered") {
		t.Fatalf("nothing ingested: %+v\n%s", s1, once)
	}
	if _, err := IngestFiles(context.Background(), st, []string{f, f}, o); err != nil {
		t.Fatal(err)
	}
	if again := dump(t, st); again != once {
		t.Errorf("after replaying twice:\n%s\nonce:\n%s", again, once)
	}
	// and through a live server
	r := start(t, st, Options{})
	for i := 0; i < 2; i++ {
		if code, body := post(t, r.s.Addr("http"), "text/plain", "", strings.Join(lines, "\n")); code != http.StatusNoContent {
			t.Fatalf("POST: %d %s", code, body)
		}
	}
	r.stop(t)
	if again := dump(t, st); again != once {
		t.Errorf("after replaying over HTTP:\n%s\nonce:\n%s", again, once)
	}
}

// flakyStore fails or blocks Append until released.
type flakyStore struct {
	store.Store
	mu      sync.Mutex
	fail    bool
	release chan struct{}
	calls   int
}

func (f *flakyStore) Append(ctx context.Context, evs []mailflow.Event) error {
	f.mu.Lock()
	f.calls++
	fail := f.fail
	f.mu.Unlock()
	if fail {
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		return fmt.Errorf("store down")
	}
	return f.Store.Append(ctx, evs)
}

func (f *flakyStore) setFail(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

// While the store is down the queues fill and then readers block (the
// memory used is bounded); appends are retried, and once the store is back
// everything that was taken is stored.
func TestStoreDownBackpressure(t *testing.T) {
	inner := openStore(t)
	fs := &flakyStore{Store: inner, fail: true, release: make(chan struct{})}
	m := NewMetrics(prometheus.NewRegistry())
	p, err := NewPipeline(fs, PipelineOptions{Correlator: testCorr, QueueChunks: 4, BatchSize: 10, MaxBackoff: 20 * time.Millisecond}, m, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var taken []string
	blocked := false
	for i := 0; i < 100000 && !blocked; i++ {
		// each chunk is one whole message with its own queue id
		qid := fmt.Sprintf("%010X", i)
		var chunk []syslog.Message
		for _, l := range outOfOrder {
			chunk = append(chunk, syslog.Message{Line: strings.ReplaceAll(l, "ABCDE12345", qid)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if err := p.Submit(ctx, "test", chunk); err != nil {
			blocked = true
		} else {
			taken = append(taken, qid)
		}
		cancel()
	}
	if !blocked {
		t.Fatal("Submit never blocked while the store was down: the queue is not bounded")
	}
	if depth := val(m.QueueDepth); depth > float64((4+1)*len(outOfOrder)) { // the queue and the chunk being read
		t.Errorf("queue depth %v over its bound", depth)
	}
	eventually(t, "store errors counted", func() (bool, string) {
		return val(m.StoreErrors) >= 2, ""
	})
	fs.setFail(false)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	rows := allRows(t, inner)
	if len(rows) != len(taken) {
		t.Errorf("%d messages taken, %d stored", len(taken), len(rows))
	}
	for _, row := range rows {
		if row.Status != mailflow.StatusDelivered {
			t.Errorf("%s", rowsString([]mailflow.Row{row}))
		}
	}
}

func newGzip(w *bytes.Buffer) *gzip.Writer { return gzip.NewWriter(w) }

func testLog(t *testing.T) logr.Logger { return testr.New(t) }

// val is a counter's or gauge's value, or a histogram's sample count.
func val(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return -1
}

// Submitting while the pipeline closes never panics: a late sender gets an
// error, what was taken is stored.
func TestSubmitDuringClose(t *testing.T) {
	st := openStore(t)
	p, err := NewPipeline(st, PipelineOptions{Correlator: testCorr, QueueChunks: 1}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if p.Submit(context.Background(), "test", asLines(outOfOrder)) != nil {
					return
				}
			}
		}()
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := p.Submit(context.Background(), "test", asLines(outOfOrder)); err == nil {
		t.Error("Submit after Close succeeded")
	}
}
