package server

import (
	"bufio"
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
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, and a client certificate of another CA.
type pki struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client, stranger          tls.Certificate
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

func newCert(t testing.TB, tpl *x509.Certificate, parent *issuer) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tpl.SerialNumber = big.NewInt(serial)
	tpl.NotBefore, tpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	pc, pk := tpl, k
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, pc, &k.PublicKey, pk)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k, der
}

func newCA(t testing.TB, name string) *issuer {
	c, k, _ := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil)
	return &issuer{c, k}
}

func keyPair(t testing.TB, c *x509.Certificate, k *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, other := newCA(t, "ingest client CA"), newCA(t, "someone else's CA")
	_, sk, sder := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca)
	cl, ck, _ := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "mx1"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, ca)
	st, stk, _ := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "mx1"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, other)
	dir := t.TempDir()
	p := &pki{caFile: filepath.Join(dir, "ca.crt"), certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"),
		pool: x509.NewCertPool(), client: keyPair(t, cl, ck), stranger: keyPair(t, st, stk)}
	p.pool.AddCert(ca.cert)
	kb, err := x509.MarshalECPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{
		p.caFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}),
		p.certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sder}),
		p.keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *pki) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12}
}

// forcing sends the stranger's certificate although the server asks for
// another CA's (a Go client would otherwise send none).
func (p *pki) forcing() *tls.Config {
	c := p.clientTLS()
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &p.stranger, nil }
	return c
}

// Starting with a listener that cannot authenticate its senders fails with
// a message naming the flags, unless --insecure-no-auth is given; the
// manager's flags carry their prefix.
func TestRefusesToStartWithoutAuth(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want []string // in the error; none: starts
	}{
		{"http without token", Options{HTTP: ":1"}, []string{"--token-file", "--tls-client-ca", "--insecure-no-auth"}},
		{"syslog tcp without client CA", Options{SyslogTCP: ":1", TokenFile: "/x"}, []string{"--syslog-tcp", "client certificate only", "--insecure-no-auth"}},
		{"udp", Options{SyslogUDP: ":1"}, []string{"UDP", "cannot authenticate"}},
		{"manager prefix", Options{HTTP: ":1", FlagPrefix: "ingest-"}, []string{"--ingest-token-file", "--ingest-insecure-no-auth"}},
		{"client CA without TLS", Options{HTTP: ":1", TLSClientCAFile: "/ca"}, []string{"--tls-client-ca needs TLS"}},
		{"cert without key", Options{HTTP: ":1", Token: "x", TLSCertFile: "/c"}, []string{"--tls-cert and --tls-key go together"}},
		{"http with token", Options{HTTP: ":1", Token: "x"}, nil},
		{"http and syslog with client CA", Options{HTTP: ":1", SyslogTCP: ":2", TLSCertFile: "/c", TLSKeyFile: "/k", TLSClientCAFile: "/ca"}, nil},
		{"insecure", Options{HTTP: ":1", SyslogTCP: ":2", SyslogUDP: ":3", InsecureNoAuth: true}, nil},
		{"nothing to listen on", Options{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
	// and Start says so rather than listening
	s := New(openStore(t), Options{HTTP: "127.0.0.1:0"})
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "refusing to take unauthenticated input") {
		t.Fatalf("Start: %v", err)
	}
}

// With TLS configured a plain-text sender gets nothing in: syslog over
// plain TCP is cut at the handshake, plain HTTP gets a 400, both counted.
func TestTLSRefusesPlainText(t *testing.T) {
	p := newPKI(t)
	st := openStore(t)
	r := start(t, st, Options{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile, Token: "tok"})
	c, err := net.Dial("tcp", r.s.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte(strings.Join(outOfOrder, "\n") + "\n"))
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("plain-text syslog connection not closed by the server: %v", err)
	}
	c.Close()
	resp, err := http.Post("http://"+r.s.Addr("http").String()+"/ingest", "text/plain", strings.NewReader(outOfOrder[0]))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
		t.Errorf("plain HTTP to the TLS endpoint: %d %s", resp.StatusCode, b)
	}
	eventually(t, "plain-text connections counted", func() (bool, string) {
		tcp, h := val(r.s.Metrics.Refused.WithLabelValues(ReasonTLSHandshake, "tls")), val(r.s.Metrics.Refused.WithLabelValues(ReasonTLSHandshake, "http"))
		return tcp == 1 && h == 1, fmt.Sprintf("syslog %v, http %v", tcp, h)
	})
	if rows := allRows(t, st); len(rows) != 0 {
		t.Errorf("plain text stored:\n%s", rowsString(rows))
	}
}

// mTLS: syslog over TLS takes lines only from a client certificate of the
// configured CA; HTTP takes a certificate or the token; everything else is
// refused with a clear error and counted.
func TestClientCertificates(t *testing.T) {
	p := newPKI(t)
	st := openStore(t)
	r := start(t, st, Options{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile, Token: "tok"})
	tcp := r.s.Addr("tcp").String()
	// syslog without a certificate, and with one of another CA: refused
	for name, cfg := range map[string]*tls.Config{"no certificate": p.clientTLS(), "another CA": p.forcing()} {
		c, err := tls.Dial("tcp", tcp, cfg)
		if err == nil {
			_, _ = c.Write([]byte(strings.Join(outOfOrder, "\n") + "\n"))
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("syslog with %s: %v, want a TLS alert about the certificate", name, err)
		}
	}
	// with the right certificate: stored
	c, err := tls.Dial("tcp", tcp, p.clientTLS(p.client))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(octet(withPRI(viaFilter)))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitStatus(t, st, "u@example.com", mailflow.StatusDelivered)
	eventually(t, "refused syslog senders counted", func() (bool, string) {
		n := val(r.s.Metrics.Refused.WithLabelValues(ReasonUnauthorized, "tls"))
		return n == 2, fmt.Sprint(n)
	})

	// HTTP over TLS
	postTLS := func(cfg *tls.Config, token string) (int, string) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
		defer hc.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "https://"+r.s.Addr("http").String()+"/ingest", strings.NewReader(strings.Join(outOfOrder, "\n")))
		req.Header.Set("Content-Type", "text/plain")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := postTLS(p.clientTLS(), ""); code != http.StatusUnauthorized ||
		!strings.Contains(body, "Bearer") || !strings.Contains(body, "client certificate") {
		t.Errorf("HTTPS without credentials: %d %s", code, body)
	}
	if code, body := postTLS(p.clientTLS(), "wrong"); code != http.StatusUnauthorized {
		t.Errorf("HTTPS with a wrong token: %d %s", code, body)
	}
	if code, body := postTLS(p.forcing(), ""); code != 0 || !strings.Contains(body, "certificate") {
		t.Errorf("HTTPS with another CA's certificate: %d %s, want the handshake refused", code, body)
	}
	if code, body := postTLS(p.clientTLS(p.client), ""); code != http.StatusNoContent {
		t.Errorf("HTTPS with a client certificate: %d %s", code, body)
	}
	if code, body := postTLS(p.clientTLS(), "tok"); code != http.StatusNoContent {
		t.Errorf("HTTPS with the token: %d %s", code, body)
	}
	eventually(t, "refused HTTP senders counted", func() (bool, string) {
		n := val(r.s.Metrics.Refused.WithLabelValues(ReasonUnauthorized, "http"))
		return n == 3, fmt.Sprint(n)
	})
}

// An oversized HTTP request gets 413 with a message that says what the
// limit is, and none of it is stored; so does one that only grows over the
// limit once decompressed; a line over the limit on TCP is dropped and
// counted while the next one is taken.
func TestOversizedInput(t *testing.T) {
	st := openStore(t)
	r := start(t, st, Options{MaxRequestBytes: 64 << 10, MaxLineBytes: 4 << 10})
	big := strings.Join(outOfOrder, "\n") + "\n" + strings.Repeat("x", 70<<10)
	code, body := post(t, r.s.Addr("http"), "text/plain", "", big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "65536 bytes") || !strings.Contains(body, "--max-request-bytes") {
		t.Errorf("oversized body: %d %q", code, body)
	}
	var zb bytes.Buffer
	zw := newGzip(&zb)
	_, _ = zw.Write([]byte(big))
	_ = zw.Close()
	req, _ := http.NewRequest("POST", "http://"+r.s.Addr("http").String()+"/ingest", &zb)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("gzip body over the limit once decompressed: %d", resp.StatusCode)
	}
	if n := val(r.s.Metrics.NotUnderstood.WithLabelValues(ReasonRequestTooBig)); n != 2 {
		t.Errorf("too large counted %v times", n)
	}
	sendTCP(t, r.s.Addr("tcp"), strings.Repeat("y", 8<<10)+"\n"+strings.Join(viaFilter, "\n")+"\n")
	waitStatus(t, st, "u@example.com", mailflow.StatusDelivered)
	if n := val(r.s.Metrics.NotUnderstood.WithLabelValues(ReasonFrameTooLong)); n != 1 {
		t.Errorf("long line counted %v times", n)
	}
	for _, row := range allRows(t, st) {
		if row.Recipient == "b@example.com" {
			t.Errorf("a line of the refused request was stored: %s", rowsString([]mailflow.Row{row}))
		}
	}
}

// Each TCP connection has its own rate limit: a fast sender is slowed
// down (its lines are read no faster than the limit allows) while another
// connection is not held up, and a shutdown does not wait for the limit.
func TestRateLimitPerConnection(t *testing.T) {
	st := openStore(t)
	r := start(t, st, Options{LinesPerSecond: 1}) // burst: one chunk of 256 lines
	var fast []string
	for i := 0; i < 2000; i++ {
		fast = append(fast, fmt.Sprintf("Mar  5 10:00:00 mx postfix/qmgr[2]: %010X: removed", i))
	}
	began := time.Now()
	c, err := net.Dial("tcp", r.s.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = c.Write([]byte(strings.Join(fast, "\n") + "\n")) }()
	lines := r.s.Metrics.LinesRead.WithLabelValues("tcp")
	eventually(t, "the first burst read", func() (bool, string) { return val(lines) >= 256, fmt.Sprint(val(lines)) })
	// another sender meanwhile gets through
	sendTCP(t, r.s.Addr("tcp"), strings.Join(outOfOrder, "\n")+"\n")
	waitStatus(t, st, "b@example.com", mailflow.StatusDelivered)
	// the upper bound follows from the time that passed, not a fixed wait
	limit := 256 + 256 + float64(len(outOfOrder)) + time.Since(began).Seconds()*1 + 1
	if got := val(lines); got > limit {
		t.Errorf("%v lines read, the limit allows %v", got, limit)
	}
	if val(lines) >= float64(len(fast)) {
		t.Error("the fast sender was not slowed down")
	}
	r.stop(t) // returns although the fast sender's lines wait for their turn
}

// syncBuffer is a log sink tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// No credential ever reaches the log, at any verbosity: not the token,
// not a wrong token a sender presented, not from a token file, through
// every path that logs (start, refusals, bad input, TLS errors, shutdown).
func TestCredentialsNeverLogged(t *testing.T) {
	const token, wrong = "tok-SECRET-7f3a9c", "wrong-SECRET-b21e"
	p := newPKI(t)
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := zap.New(zap.WriteTo(&logs), zap.Level(zapcore.Level(-10)))
	st := openStore(t)
	o := Options{SyslogTCP: "127.0.0.1:0", HTTP: "127.0.0.1:0", TokenFile: tf, TLSCertFile: p.certFile, TLSKeyFile: p.keyFile,
		TLSClientCAFile: p.caFile, MaxRequestBytes: 1 << 20, Pipeline: PipelineOptions{Correlator: testCorr}, Log: log, Registerer: prometheus.NewRegistry()}
	s := New(st, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	if s.Addr("http") == nil {
		cancel()
		t.Fatal(<-done)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS()}, Timeout: 30 * time.Second}
	for _, auth := range []string{"", "Bearer " + wrong, "Bearer " + token + "x", "Basic " + wrong, "Bearer " + token} {
		for _, b := range []string{strings.Join(outOfOrder, "\n"), "garbage\x00", strings.Repeat("z", 2<<20)} {
			req, _ := http.NewRequest("POST", "https://"+s.Addr("http").String()+"/ingest", strings.NewReader(b))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	// plain text to both TLS listeners, with the token in the request
	for _, a := range []string{s.Addr("tcp").String(), s.Addr("http").String()} {
		if c, err := net.Dial("tcp", a); err == nil {
			fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", token)
			_, _ = bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
	}
	if c, err := tls.Dial("tcp", s.Addr("tcp").String(), p.clientTLS()); err == nil {
		_, _ = c.Write([]byte(token + "\n"))
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "ingest connection refused") || !strings.Contains(out, "ingest stopped") {
		t.Fatalf("the test did not exercise the logs:\n%s", out)
	}
	for _, secret := range []string{"SECRET", token, wrong} {
		if strings.Contains(out, secret) {
			t.Errorf("%q in the logs:\n%s", secret, out)
		}
	}
}

// A renewed certificate (the Secret's files replaced) is served to the
// next connection without a restart.
func TestCertificateRenewal(t *testing.T) {
	p := newPKI(t)
	st := openStore(t)
	r := start(t, st, Options{TLSCertFile: p.certFile, TLSKeyFile: p.keyFile, TLSClientCAFile: p.caFile})
	serialOf := func() string {
		c, err := tls.Dial("tcp", r.s.Addr("tcp").String(), p.clientTLS(p.client))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serialOf()
	q := newPKI(t) // another server certificate, of another CA the client now trusts too
	caPEM, err := os.ReadFile(q.caFile)
	if err != nil {
		t.Fatal(err)
	}
	p.pool.AppendCertsFromPEM(caPEM)
	for from, to := range map[string]string{q.certFile: p.certFile, q.keyFile: p.keyFile} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // a distinct modification time
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if after := serialOf(); after == before {
		t.Errorf("still serving certificate %s after the renewal", before)
	}
}

// Connections over --max-connections are closed at once and counted; the
// open ones keep working.
func TestMaxConnections(t *testing.T) {
	st := openStore(t)
	r := start(t, st, Options{MaxConnections: 2})
	addr := r.s.Addr("tcp").String()
	var open []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	// the server has taken both once a line of each is read
	for i, c := range open {
		fmt.Fprintf(c, "Mar  5 10:00:0%d mx postfix/qmgr[2]: ABCDEF000%d: removed\n", i, i)
	}
	lines := r.s.Metrics.LinesRead.WithLabelValues("tcp")
	eventually(t, "both connections read", func() (bool, string) { return val(lines) == 2, fmt.Sprint(val(lines)) })
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Error("a third connection was kept open")
	}
	if n := val(r.s.Metrics.Refused.WithLabelValues(ReasonTooManyConns, "tcp")); n != 1 {
		t.Errorf("refused connections counted %v times", n)
	}
	if _, err := open[0].Write([]byte(strings.Join(outOfOrder, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	open[0].Close()
	waitStatus(t, st, "b@example.com", mailflow.StatusDelivered)
}
