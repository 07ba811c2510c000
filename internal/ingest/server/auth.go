package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Who may write traces. A sender is authenticated by a bearer token (HTTP
// only) or by a client certificate signed by the TLSClientCAFile bundle
// (HTTP and syslog over TCP). A server with a listener that has no way to
// authenticate its senders does not start unless InsecureNoAuth says that
// the network is trusted; a credential that is configured is always
// required, InsecureNoAuth or not. Syslog over UDP cannot authenticate.

// handshakeTimeout bounds a TLS handshake of a syslog connection.
const handshakeTimeout = 10 * time.Second

// errNoClientCert is the handshake error of a syslog sender without a
// client certificate when one is required.
var errNoClientCert = errors.New("no client certificate: syslog over TCP needs a certificate signed by the ingest client CA")

// Validate says whether the options are complete and, unless
// InsecureNoAuth, whether every listener authenticates its senders. Its
// messages name the flags (with FlagPrefix).
func (o Options) Validate() error {
	f := func(name string) string { return "--" + o.FlagPrefix + name }
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return fmt.Errorf("ingest: %s and %s go together", f("tls-cert"), f("tls-key"))
	}
	if o.TLSClientCAFile != "" && o.TLSCertFile == "" {
		return fmt.Errorf("ingest: %s needs TLS: give %s and %s too", f("tls-client-ca"), f("tls-cert"), f("tls-key"))
	}
	if o.Pipeline.WALDir != "" && o.Pipeline.StateFile == "" {
		return fmt.Errorf("ingest: %s needs %s: the state file is the checkpoint the log is read again from", f("wal-dir"), f("state-file"))
	}
	if o.InsecureNoAuth || !o.Enabled() {
		return nil
	}
	var open []string
	if o.HTTP != "" && o.Token == "" && o.TokenFile == "" && o.TLSClientCAFile == "" {
		open = append(open, fmt.Sprintf("HTTP (%s %s) needs a bearer token (%s, or $MAILTRACE_INGEST_TOKEN) or client certificates (%s, %s, %s)",
			f("http"), o.HTTP, f("token-file"), f("tls-cert"), f("tls-key"), f("tls-client-ca")))
	}
	if o.SyslogTCP != "" && o.TLSClientCAFile == "" {
		open = append(open, fmt.Sprintf("syslog over TCP (%s %s) authenticates senders by client certificate only: give %s, %s and %s, or %s=\"\" to turn it off",
			f("syslog-tcp"), o.SyslogTCP, f("tls-cert"), f("tls-key"), f("tls-client-ca"), f("syslog-tcp")))
	}
	if o.SyslogUDP != "" {
		open = append(open, fmt.Sprintf("syslog over UDP (%s %s) cannot authenticate senders", f("syslog-udp"), o.SyslogUDP))
	}
	if len(open) == 0 {
		return nil
	}
	return fmt.Errorf("ingest: refusing to take unauthenticated input: %s; or pass %s to accept it from a trusted network",
		strings.Join(open, "; "), f("insecure-no-auth"))
}

// tlsConfigs returns the TLS configuration of the syslog TCP listener and
// of the HTTP listener (both nil without a certificate). With a client CA,
// syslog requires a verified client certificate; HTTP verifies one when
// given and otherwise asks for the token.
func (s *Server) tlsConfigs() (syslogCfg, httpCfg *tls.Config, err error) {
	if s.o.TLSCertFile == "" {
		return nil, nil, nil
	}
	certs := &certSource{certFile: s.o.TLSCertFile, keyFile: s.o.TLSKeyFile}
	if _, err := certs.get(nil); err != nil {
		return nil, nil, fmt.Errorf("ingest TLS: %w", err)
	}
	base := &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12}
	if s.o.TLSClientCAFile != "" {
		pem, err := os.ReadFile(s.o.TLSClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("ingest TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("ingest TLS client CA: no PEM certificate in %s", s.o.TLSClientCAFile)
		}
		base.ClientCAs, base.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	httpCfg = base.Clone()
	syslogCfg = base.Clone()
	if s.o.TLSClientCAFile != "" {
		syslogCfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 {
				return errNoClientCert
			}
			return nil
		}
	}
	return syslogCfg, httpCfg, nil
}

// certSource serves the certificate of TLSCertFile/TLSKeyFile, loading it
// again when either file changes (a Secret renewed by cert-manager); a pair
// that does not load (caught between the two files' updates) leaves the
// previous one in use.
type certSource struct {
	certFile, keyFile string
	mu                sync.Mutex
	stamp             string
	cert              *tls.Certificate
}

func (c *certSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp := ""
	for _, f := range []string{c.certFile, c.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && stamp == c.stamp {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil
		}
		return nil, err
	}
	c.cert, c.stamp = &cert, stamp
	return c.cert, nil
}

// handshake completes the TLS handshake of a syslog connection (a no-op
// for plain TCP); a failure is counted and logged, and the connection is
// to be closed.
func (s *Server) handshake(ctx context.Context, p *Pipeline, c net.Conn, transport string) bool {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return true
	}
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	err := tc.HandshakeContext(hctx)
	if err == nil {
		return true
	}
	reason := ReasonTLSHandshake
	var cve *tls.CertificateVerificationError
	if errors.Is(err, errNoClientCert) || errors.As(err, &cve) {
		reason = ReasonUnauthorized
	}
	p.Refused(reason, transport, c.RemoteAddr().String(), err.Error())
	return false
}

// httpErrorLog receives net/http's own errors (TLS handshakes that
// failed: a plain-text client, a bad client certificate), counts them and
// logs them rate-limited.
type httpErrorLog struct{ p *Pipeline }

func (h httpErrorLog) Write(b []byte) (int, error) {
	msg := string(bytes.TrimSpace(b))
	if rest, ok := strings.CutPrefix(msg, "http: TLS handshake error from "); ok {
		remote, cause, _ := strings.Cut(rest, ": ")
		reason := ReasonTLSHandshake
		if strings.Contains(cause, "certificate") {
			reason = ReasonUnauthorized
		}
		h.p.Refused(reason, "http", remote, cause)
		return len(b), nil
	}
	h.p.badLog.Info("http", "ingest HTTP server", "error", msg)
	return len(b), nil
}

func newHTTPErrorLog(p *Pipeline) *log.Logger { return log.New(httpErrorLog{p}, "", 0) }

// Refused counts a connection or request refused before any line was read
// (no credentials, a failed TLS handshake, too many connections) and logs
// it rate-limited, with the sender's address and the cause; never a
// credential.
func (p *Pipeline) Refused(reason, transport, remote, cause string) {
	p.m.NotUnderstood.WithLabelValues(reason).Inc()
	p.m.Refused.WithLabelValues(reason, transport).Inc()
	p.badLog.Info("refused "+reason, "ingest connection refused", "reason", reason, "transport", transport, "remote", remote, "cause", sample(cause))
}
