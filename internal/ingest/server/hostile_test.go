package server

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/store"
)

// Hostile senders: each case of issue 15 attacks a running server on
// loopback while a legitimate sender keeps sending; every message of the
// legitimate sender must be stored (Delivered), and the attack counted.

// legitMessage is message i of the legitimate sender: four lines, one
// Delivered row for u<i>@<tag>.example.com.
func legitMessage(tag string, i int) []string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tag))
	q := fmt.Sprintf("%03X%07X", 0xA00+h.Sum32()%0x600, i)
	rcpt := fmt.Sprintf("u%d@%s.example.com", i, tag)
	// RFC 3339 timestamps: the same year in-process and in the binary
	return []string{
		fmt.Sprintf("2024-03-06T10:00:00Z mx postfix/smtpd[1]: %s: client=c.example.net[192.0.2.1]", q),
		fmt.Sprintf("2024-03-06T10:00:01Z mx postfix/qmgr[2]: %s: from=<s@example.net>, size=10, nrcpt=1 (queue active)", q),
		fmt.Sprintf("2024-03-06T10:00:02Z mx postfix/smtp[3]: %s: to=<%s>, relay=r[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 ok)", q, rcpt),
		fmt.Sprintf("2024-03-06T10:00:02Z mx postfix/qmgr[2]: %s: removed", q),
	}
}

// hostileStart runs a server whose correlator takes the legitimate
// sender's domain.
func hostileStart(t *testing.T, st store.Store, o Options) *running {
	t.Helper()
	o.Pipeline.Correlator = testCorr
	o.Pipeline.Correlator.AcceptedDomains = []string{"example.com", "*.example.com"}
	return start(t, st, o)
}

// waitDelivered waits until the n messages of tag are Delivered.
func waitDelivered(t *testing.T, st store.Store, tag string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages of %s delivered", n, tag), func() (bool, string) {
		got := map[string]bool{}
		for _, r := range allRows(t, st) {
			if strings.HasSuffix(r.Recipient, "@"+tag+".example.com") && string(r.Status) == "Delivered" {
				got[r.Recipient] = true
			}
		}
		var missing []string
		for i := 0; i < n; i++ {
			if !got[fmt.Sprintf("u%d@%s.example.com", i, tag)] {
				missing = append(missing, strconv.Itoa(i))
			}
		}
		return len(missing) == 0, fmt.Sprintf("%d of %d stored; missing %s", len(got), n, head(missing))
	})
}

func head(s []string) string {
	if len(s) > 10 {
		return strings.Join(s[:10], ",") + ",..."
	}
	return strings.Join(s, ",")
}

// legit is a legitimate sender that keeps sending messages until stopped.
type legit struct {
	tag  string
	sent atomic.Int64
	stop chan struct{}
	done chan error
}

func (l *legit) end(t *testing.T) int {
	t.Helper()
	close(l.stop)
	if err := <-l.done; err != nil {
		t.Fatalf("legitimate sender: %v", err)
	}
	return int(l.sent.Load())
}

// keepPosting posts one message at a time (as NDJSON) until stopped,
// retrying a 503 as Fluent Bit does; it stops after max messages.
func keepPosting(t *testing.T, addr net.Addr, tag string, max int) *legit {
	l := &legit{tag: tag, stop: make(chan struct{}), done: make(chan error, 1)}
	c := &http.Client{Timeout: 2 * time.Minute}
	go func() {
		for i := 0; i < max; i++ {
			select {
			case <-l.stop:
				l.done <- nil
				return
			default:
			}
			var b strings.Builder
			for _, line := range legitMessage(tag, i) {
				fmt.Fprintf(&b, "{\"log\":%q}\n", line)
			}
			for try := 0; ; try++ {
				resp, err := c.Post("http://"+addr.String()+"/ingest", "application/x-ndjson", strings.NewReader(b.String()))
				if err != nil {
					l.done <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent {
					break
				}
				if resp.StatusCode != http.StatusServiceUnavailable || try > 100 {
					l.done <- fmt.Errorf("message %d: %d %s", i, resp.StatusCode, body)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			l.sent.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
		<-l.stop
		l.done <- nil
	}()
	return l
}

// keepSending writes messages over one syslog connection (dial makes it)
// until stopped; a connection the server refuses (closed before a byte is
// read back) is dialled again, as rsyslog does.
func keepSending(t *testing.T, dial func() (net.Conn, error), tag string, max int) *legit {
	l := &legit{tag: tag, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		var c net.Conn
		for try := 0; c == nil; try++ {
			conn, err := dial()
			if err == nil {
				// refused connections are closed at once: wait to see
				_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				_, err = conn.Read(make([]byte, 1))
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					_ = conn.SetReadDeadline(time.Time{})
					c = conn
					break
				}
				conn.Close()
			}
			if try > 300 {
				l.done <- fmt.Errorf("never got a connection: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		defer c.Close()
		for i := 0; i < max; i++ {
			select {
			case <-l.stop:
				l.done <- nil
				return
			default:
			}
			if _, err := io.WriteString(c, strings.Join(legitMessage(tag, i), "\n")+"\n"); err != nil {
				l.done <- err
				return
			}
			l.sent.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
		<-l.stop
		l.done <- nil
	}()
	return l
}

// heapWatch samples the heap in use until stopped and returns its peak.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

const hostileHeapBound = 256 << 20

// Newline-framed lines that start with digits and a space once read as
// octet counts and swallowed the lines after them ("4096 bytes of junk"
// lost 10 of 100 messages, "65000 y" all 100, "99999999 z" the rest of
// the connection). Now they are lines (not syslog: counted), and every
// message after them is stored.
func TestHostileDigitSpaceLines(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{})
	for _, junk := range []string{"4096 bytes of junk", "65000 y", "99999999 z"} {
		tag := "d" + strings.Fields(junk)[0]
		var b strings.Builder
		for i := 0; i < 100; i++ {
			if i%10 == 0 {
				b.WriteString(junk + "\n")
			}
			b.WriteString(strings.Join(legitMessage(tag, i), "\n") + "\n")
		}
		sendTCP(t, r.s.Addr("tcp"), b.String())
		waitDelivered(t, st, tag, 100)
	}
	// octet-counted, a bogus frame in the middle costs only itself
	var b strings.Builder
	for i := 0; i < 50; i++ {
		for _, l := range withPRI(legitMessage("oc", i)) {
			b.WriteString(strconv.Itoa(len(l)) + " " + l)
		}
		if i == 20 {
			b.WriteString("99999999 z\n")
		}
	}
	sendTCP(t, r.s.Addr("tcp"), b.String())
	waitDelivered(t, st, "oc", 50)
	if n := val(r.s.Metrics.NotUnderstood.WithLabelValues(ReasonBadFrame)); n != 1 {
		t.Errorf("bad frames counted %v times, want 1", n)
	}
	if n := val(r.s.Limits.DroppedBytes.WithLabelValues(ReasonBadFrame)); n != float64(len("99999999 z\n")) {
		t.Errorf("bad frame bytes counted %v, want %d", n, len("99999999 z\n"))
	}
}

// One malformed record in the middle of an NDJSON body once lost every
// record after it, and a retry got the same 400: now it is skipped and
// counted, the rest stored, and the answer says what was dropped.
func TestHostileNDJSONMalformedLine(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{})
	var b strings.Builder
	for i := 0; i < 50; i++ {
		for _, l := range legitMessage("nd", i) {
			fmt.Fprintf(&b, "{\"log\":%q}\n", l)
		}
		if i == 10 {
			b.WriteString("{\"log\": \"Mar  6 10:00:00 mx postfix/qmgr[2]: cut in the mid\n")
		}
		if i == 20 {
			b.WriteString("not json at all\n")
		}
	}
	code, body := post(t, r.s.Addr("http"), "application/x-ndjson", "", b.String())
	if code != http.StatusOK || !strings.Contains(body, "200 records stored, dropped 2 (bad json: 2)") {
		t.Errorf("NDJSON with two bad lines: %d %q", code, body)
	}
	waitDelivered(t, st, "nd", 50)
	if n := val(r.s.Metrics.NotUnderstood.WithLabelValues(ReasonBadJSON)); n != 2 {
		t.Errorf("bad json counted %v times, want 2", n)
	}
}

// Four POSTs of 16 MiB of [{},{},...] once took the ingester to 3.4-3.8
// GiB; now records are read one at a time and a request holds at most
// --max-records-per-request of them (413, nothing stored), with the heap
// bounded, while a legitimate sender's POSTs go through.
func TestHostileJSONAmplification(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{})
	h := r.s.Addr("http")
	body := jsonEmptyRecords(16 << 20)
	runtime.GC()
	peak := heapWatch()
	l := keepPosting(t, h, "amp", 1<<30)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post("http://"+h.String()+"/ingest", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
			if !strings.Contains(string(msg), "--max-records-per-request") {
				t.Errorf("answer %q does not name the flag", msg)
			}
		}()
	}
	wg.Wait()
	n := l.end(t)
	heap := peak()
	for _, c := range codes {
		if c != http.StatusRequestEntityTooLarge {
			t.Errorf("16 MiB of empty records: %v, want 413 each", codes)
			break
		}
	}
	waitDelivered(t, st, "amp", n)
	t.Logf("4 x 16 MiB of [{},{},...] with %d legitimate messages: peak heap in use %d MiB", n, heap>>20)
	if heap > hostileHeapBound {
		t.Errorf("peak heap in use %d MiB, over %d MiB", heap>>20, hostileHeapBound>>20)
	}
	// under the record cap, empty records are dropped and counted: 200
	code, msg := post(t, h, "application/json", "", string(jsonEmptyRecords(1<<10)))
	if code != http.StatusOK || !strings.Contains(msg, "0 records stored, dropped 341 (record without a message: 341)") {
		t.Errorf("1 KiB of empty records: %d %q", code, msg)
	}
	// a refused request is counted once, not record by record
	m := r.s.Metrics.NotUnderstood
	if a, b := val(m.WithLabelValues(ReasonTooManyRecords)), val(m.WithLabelValues(ReasonEmptyRecord)); a != 4 || b != 341 {
		t.Errorf("counted %v requests with too many records, %v records without a message; want 4 and 341", a, b)
	}
	if v := val(r.s.Limits.DroppedBytes.WithLabelValues(ReasonTooManyRecords)); v != 4*float64(len(body)) {
		t.Errorf("bytes of the refused requests: %v, want %d", v, 4*len(body))
	}
}

// jsonEmptyRecords is [{},{},...] of about size bytes.
func jsonEmptyRecords(size int) []byte {
	b := make([]byte, 0, size+2)
	b = append(b, '[')
	for len(b)+4 < size {
		b = append(b, "{},"...)
	}
	b = append(b, "{}]"...)
	return b
}

// A gzip body that inflates past --max-request-bytes is refused with 413
// once the limit is read, never inflated whole; JSON nested without end
// gets 400 without a deep stack; a legitimate sender is not held up.
func TestHostileGzipBombAndDeepNesting(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{})
	h := r.s.Addr("http")
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 1024; i++ { // 1 GiB inflated
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	runtime.GC()
	peak := heapWatch()
	l := keepPosting(t, h, "bomb", 1<<30)
	for i := 0; i < 4; i++ {
		req, _ := http.NewRequest("POST", "http://"+h.String()+"/ingest", bytes.NewReader(zb.Bytes()))
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("gzip bomb (%d KiB, 1 GiB inflated): %d, want 413", zb.Len()>>10, resp.StatusCode)
		}
	}
	for _, deep := range []string{strings.Repeat("[", 1<<20), `[{"log":"x","k":` + strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100) + "}]",
		strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)} {
		code, msg := post(t, h, "application/json", "", deep)
		if code != http.StatusBadRequest || !strings.Contains(msg, "nested deeper than 64 levels") {
			t.Errorf("JSON nested %.20s...: %d %q", deep, code, msg)
		}
	}
	n := l.end(t)
	heap := peak()
	waitDelivered(t, st, "bomb", n)
	t.Logf("gzip bombs and deep nesting with %d legitimate messages: peak heap in use %d MiB", n, heap>>20)
	if heap > hostileHeapBound {
		t.Errorf("peak heap in use %d MiB, over %d MiB", heap>>20, hostileHeapBound>>20)
	}
	if v := val(r.s.Metrics.NotUnderstood.WithLabelValues(ReasonTooDeep)); v != 3 {
		t.Errorf("too deep counted %v times, want 3", v)
	}
}

// dialFrom dials addr from a loopback address of its own (the attacker's).
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// 64 connections that never start their TLS handshake once locked out a
// sender with a valid client certificate: now they are not counted as
// connections, their handshakes have a budget of their own and one
// address holds at most --max-connections-per-ip of them.
func TestHostilePreHandshakeConnections(t *testing.T) {
	p := newPKI(t)
	st := openStore(t)
	r := hostileStart(t, st, Options{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile, Token: "tok", MaxConnections: 64})
	addr := r.s.Addr("tcp").String()
	var idle []net.Conn
	for i := 0; i < 64; i++ {
		c, err := dialFrom("127.0.0.2", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	refused := r.s.Metrics.Refused.WithLabelValues(ReasonTooManyFromIP, "tls")
	eventually(t, "connections over the per-address cap refused", func() (bool, string) { return val(refused) == 32, fmt.Sprint(val(refused)) })
	l := keepSending(t, func() (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, p.clientTLS(p.client))
	}, "tlsflood", 300)
	time.Sleep(time.Second)
	n := l.end(t)
	waitDelivered(t, st, "tlsflood", n)
	if n == 0 {
		t.Fatal("the legitimate sender sent nothing")
	}
}

// 64 idle plain TCP connections once held every slot (no idle timeout):
// now a connection silent for --idle-timeout is closed, and the sender
// that waited gets in.
func TestHostileIdleConnections(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{MaxConnections: 64, MaxConnectionsPerIP: 64, IdleTimeout: time.Second})
	addr := r.s.Addr("tcp").String()
	var idle []net.Conn
	for i := 0; i < 64; i++ {
		c, err := dialFrom("127.0.0.2", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	l := keepSending(t, func() (net.Conn, error) { return net.Dial("tcp", addr) }, "idle", 300)
	time.Sleep(time.Second)
	n := l.end(t)
	waitDelivered(t, st, "idle", n)
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("an idle connection was not closed: %v", err)
		}
	}
	if v := val(r.s.Limits.Cut.WithLabelValues(ReasonIdle, "tcp")); v != 64 {
		t.Errorf("idle connections cut: %v, want 64", v)
	}
	// a frame begun and never ended is cut at --frame-timeout
	r2 := hostileStart(t, openStore(t), Options{FrameTimeout: 500 * time.Millisecond})
	c, err := net.Dial("tcp", r2.s.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte("Mar  6 10:00:00 mx postfix")); err != nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	slow := r2.s.Limits.Cut.WithLabelValues(ReasonSlowFrame, "tcp")
	eventually(t, "a slow frame cut", func() (bool, string) { return val(slow) == 1, fmt.Sprint(val(slow)) })
}

// Four requests that announce 1 MB and send a byte a second once took
// every request slot; now a body holds no slot while it is read and is cut
// at --http-body-timeout (408), and a legitimate POST goes through.
func TestHostileSlowBodies(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{BodyTimeout: 3 * time.Second})
	h := r.s.Addr("http").String()
	var wg sync.WaitGroup
	codes := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", h)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n")
			go func() {
				for j := 0; j < 30; j++ {
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			status, _ := io.ReadAll(io.LimitReader(c, 12))
			codes <- string(status)
		}()
	}
	time.Sleep(500 * time.Millisecond) // the slow ones are in
	l := keepPosting(t, r.s.Addr("http"), "slow", 1<<30)
	time.Sleep(time.Second)
	n := l.end(t)
	waitDelivered(t, st, "slow", n)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != "HTTP/1.1 408" {
			t.Errorf("slow body answered %q, want 408", c)
		}
	}
	if v := val(r.s.Limits.Cut.WithLabelValues(ReasonSlowBody, "http")); v != 4 {
		t.Errorf("slow bodies cut: %v, want 4", v)
	}
}

// The body bound: a body that would take the bytes in memory past
// MaxConcurrentRequests x MaxRequestBytes gets 503 with Retry-After.
func TestBodiesInMemoryBounded(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{MaxConcurrentRequests: 1, MaxRequestBytes: 1 << 20})
	if !r.s.reserve(1<<20 - 100) {
		t.Fatal("cannot reserve")
	}
	req, _ := http.NewRequest("POST", "http://"+r.s.Addr("http").String()+"/ingest", strings.NewReader(strings.Repeat("x", 200<<10)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("body over the bound: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	r.s.unreserve(1<<20 - 100)
	code, body := post(t, r.s.Addr("http"), "text/plain", "", strings.Join(legitMessage("bound", 0), "\n"))
	if code != http.StatusNoContent {
		t.Errorf("after: %d %s", code, body)
	}
	waitDelivered(t, st, "bound", 1)
}

// One address holds at most --max-connections-per-ip HTTP connections
// too; another address is not held up.
func TestHTTPConnectionsPerIP(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{MaxConnectionsPerIP: 4})
	h := r.s.Addr("http").String()
	var held []net.Conn
	for i := 0; i < 8; i++ {
		c, err := dialFrom("127.0.0.2", h)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	refused := r.s.Metrics.Refused.WithLabelValues(ReasonTooManyFromIP, "http")
	eventually(t, "connections over the per-address cap refused", func() (bool, string) { return val(refused) == 4, fmt.Sprint(val(refused)) })
	l := keepPosting(t, r.s.Addr("http"), "perip", 20)
	time.Sleep(500 * time.Millisecond)
	n := l.end(t)
	waitDelivered(t, st, "perip", n)
	for _, c := range held[:4] {
		c.Close()
	}
	// once the server has seen those four go, the address gets in again
	eventually(t, "a connection once the address is under its cap", func() (bool, string) {
		c, err := dialFrom("127.0.0.2", h)
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		status, _ := io.ReadAll(io.LimitReader(c, 12))
		return string(status) == "HTTP/1.1 200", string(status)
	})
}

// A stop reads what senders already wrote (for shutdownDrain) rather than
// cutting their connections with it unread: a sender held back by the
// rate limit loses none of its messages to the stop.
func TestStopDrainsConnections(t *testing.T) {
	st := openStore(t)
	r := hostileStart(t, st, Options{LinesPerSecond: 1}) // a burst of 256 lines, then one a second
	c, err := net.Dial("tcp", r.s.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	for i := 0; i < 300; i++ {
		b.WriteString(strings.Join(legitMessage("drain", i), "\n") + "\n")
	}
	go func() { _, _ = io.WriteString(c, b.String()) }()
	lines := r.s.Metrics.LinesRead.WithLabelValues("tcp")
	eventually(t, "the first burst read", func() (bool, string) { return val(lines) >= 256, fmt.Sprint(val(lines)) })
	r.stop(t)
	if got := val(lines); got != 1200 {
		t.Errorf("%v of 1200 lines read before the stop ended", got)
	}
	waitDelivered(t, st, "drain", 300)
}
