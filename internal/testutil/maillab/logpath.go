package maillab

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailtrace/mailtrace/internal/cli"
)

// certFiles are the PEM files of the log path's TLS: a CA, the ingester's
// server certificate (localhost, 127.0.0.1) and rsyslog's client certificate.
type certFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func writeCerts(dir string) (certFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return certFiles{}, err
	}
	f := certFiles{
		ca:         filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "maillab CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(f.ca, "CERTIFICATE", caDER); err != nil {
		return f, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyPath, "EC PRIVATE KEY", kder)
	}
	if err := leaf(2, "localhost", x509.ExtKeyUsageServerAuth, f.serverCert, f.serverKey); err != nil {
		return f, err
	}
	return f, leaf(3, "maillab-rsyslog", x509.ExtKeyUsageClientAuth, f.clientCert, f.clientKey)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// startIngester runs `mailtrace ingest` (the CLI command itself, in this
// process) on a loopback syslog TCP port that requires TLS with a client
// certificate, as deployed, writing to the PostgreSQL store dsn. What the
// command prints goes to log/ingest.log when it exits; its logger writes
// to the test process's stderr.
func (l *Lab) startIngester(dsn string, certs certFiles) error {
	l.mu.Lock()
	l.dsn, l.certs = dsn, certs
	l.mu.Unlock()
	if err := os.MkdirAll(l.path("ingest"), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := cli.NewRootCommand()
	var out bytes.Buffer
	var outMu sync.Mutex
	w := lockedWriter{&outMu, &out}
	cmd.SetOut(w)
	cmd.SetErr(w)
	cmd.SetArgs([]string{"ingest", "--store", dsn,
		"--syslog-tcp", addr(l.ports.syslog), "--http", "", "--metrics-bind-address", "0",
		"--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-client-ca", certs.ca,
		"--accepted-domain", Domain, "--batch-wait", "50ms", "--pending-after", PendingAfter.String(),
		// As deployed (a StatefulSet): the correlator's state and the
		// write-ahead log survive a restart.
		"--state-file", l.path("ingest", "state.json"), "--state-interval", "1s"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	p := &proc{name: "ingest", exited: make(chan struct{})}
	var exitErr error
	go func() {
		exitErr = <-done
		outMu.Lock()
		if f, err := os.OpenFile(l.LogFile("ingest.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			_, _ = f.Write(out.Bytes())
			fmt.Fprintf(f, "--- mailtrace ingest returned at %s: %v\n", time.Now().UTC().Format(time.RFC3339Nano), exitErr)
			f.Close()
		}
		outMu.Unlock()
		close(p.exited)
	}()
	l.mu.Lock()
	l.ingestStop = func() {
		cancel()
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			l.DumpGoroutines("mailtrace ingest did not stop within 30s of its context's end")
		}
	}
	l.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr(l.ports.syslog), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("maillab: mailtrace ingest exited at start: %v\n%s", exitErr, tailOf(l.LogFile("ingest.log")))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("maillab: mailtrace ingest did not listen on %s within a minute", addr(l.ports.syslog))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startRsyslog runs a private rsyslogd in the foreground that tails
// Postfix's maillog_file (imfile) and forwards each line unchanged, as the
// message of an RFC 3164 frame (<22> is mail.info), octet-counted over TCP
// with TLS and a client certificate (the gtls driver, the peer's name
// checked) to the ingester, its queue retrying while the ingester is away.
//
// Dovecot's and rspamd's log files are tailed the same way and sent as
// syslog would have them from those daemons: the program "dovecot" or
// "rspamd", the host Postfix's lines name (one machine), with their own
// timestamps (Dovecot's log_timestamp is syslog's; rspamd's, in UTC, is
// rewritten as RFC 3339's).
func (l *Lab) startRsyslog(certs certFiles) error {
	dir := l.path("rsyslog")
	if err := os.MkdirAll(dir+"/work", 0o755); err != nil {
		return err
	}
	host, err := maillogHost(l.LogFile("maillog"))
	if err != nil {
		return err
	}
	conf := fmt.Sprintf(`# The mail lab's log shipper (internal/testutil/maillab).
global(
  workDirectory="%[1]s/work"
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="%[2]s"
  defaultNetstreamDriverCertFile="%[3]s"
  defaultNetstreamDriverKeyFile="%[4]s"
)
module(load="imfile")
template(name="maillab_raw" type="string" string="<22>%%msg%%")
# Dovecot's line: "Dec  6 03:24:50 lmtp(bob@lab.test)<...>: Info: ..."
template(name="maillab_dovecot" type="string" string="<22>%%msg:1:15%% %[7]s dovecot: %%msg:17:$%%")
# rspamd's line: "2026-12-06 03:24:50 #4711(rspamd_proxy) <a1b2c3>; proxy; ..." (UTC: the lab's TZ)
template(name="maillab_rspamd" type="string" string="<22>%%msg:1:10%%T%%msg:12:19%%Z %[7]s rspamd: %%msg:21:$%%")
input(type="imfile" file="%[5]s" tag="maillog" ruleset="ship" freshStartTail="off")
input(type="imfile" file="%[8]s" tag="dovecot" ruleset="dovecot" freshStartTail="off")
input(type="imfile" file="%[9]s" tag="rspamd" ruleset="rspamd" freshStartTail="off")
ruleset(name="ship") {
  action(type="omfwd" name="maillog" target="127.0.0.1" port="%[6]d" protocol="tcp"
    tcp_framing="octet-counted" template="maillab_raw"
    streamDriver="gtls" streamDriverMode="1"
    streamDriverAuthMode="x509/name" streamDriverPermittedPeers="localhost"
    action.resumeRetryCount="-1" action.resumeInterval="1"
    queue.type="LinkedList" queue.size="100000")
}
ruleset(name="dovecot") {
  action(type="omfwd" name="dovecot" target="127.0.0.1" port="%[6]d" protocol="tcp"
    tcp_framing="octet-counted" template="maillab_dovecot"
    streamDriver="gtls" streamDriverMode="1"
    streamDriverAuthMode="x509/name" streamDriverPermittedPeers="localhost"
    action.resumeRetryCount="-1" action.resumeInterval="1"
    queue.type="LinkedList" queue.size="100000")
}
ruleset(name="rspamd") {
  action(type="omfwd" name="rspamd" target="127.0.0.1" port="%[6]d" protocol="tcp"
    tcp_framing="octet-counted" template="maillab_rspamd"
    streamDriver="gtls" streamDriverMode="1"
    streamDriverAuthMode="x509/name" streamDriverPermittedPeers="localhost"
    action.resumeRetryCount="-1" action.resumeInterval="1"
    queue.type="LinkedList" queue.size="100000")
}
`, dir, certs.ca, certs.clientCert, certs.clientKey, l.LogFile("maillog"), l.ports.syslog,
		host, l.LogFile("dovecot.log"), l.LogFile("rspamd.log"))
	if err := writeFile(dir+"/rsyslog.conf", conf, 0o644); err != nil {
		return err
	}
	if out, err := runOut("/usr/sbin/rsyslogd", "-N1", "-f", dir+"/rsyslog.conf"); err != nil {
		return fmt.Errorf("maillab: rsyslogd -N1 (config check): %v\n%s", err, out)
	}
	_, err = l.spawn("rsyslog", nil, "/usr/sbin/rsyslogd", "-n", "-f", dir+"/rsyslog.conf", "-i", dir+"/rsyslog.pid")
	return err
}

// maillogHost is the host Postfix names in its maillog lines
// ("Dec  6 03:24:50 HOST postfix/master[1]: ..."), which the lab's other
// daemons' lines name too.
func maillogHost(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("maillab: the host of Postfix's log lines: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], "postfix") {
			return f[3], nil
		}
	}
	return "", fmt.Errorf("maillab: no Postfix line in %s to take the host from", path)
}

func runOut(argv ...string) ([]byte, error) {
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

// RestartIngester stops the ingester (as a rollout would: its state saved,
// its connections closed), calls during (when not nil: mail sent then is
// logged while no ingester runs) and starts it again on the same port, with
// the same state file; rsyslog keeps what Postfix logs meanwhile and sends
// it when the ingester is back.
func (l *Lab) RestartIngester(during func()) error {
	l.mu.Lock()
	stop, dsn, certs := l.ingestStop, l.dsn, l.certs
	l.ingestStop = nil
	l.mu.Unlock()
	if stop != nil {
		stop()
		if during != nil {
			l.awaitShipperNoticesDown()
		}
	}
	if during != nil {
		during()
	}
	return l.startIngester(dsn, certs)
}

// awaitShipperNoticesDown appends lines that the ingester ignores (a
// postlogd line) to the maillog until rsyslog reports the connection to
// the stopped ingester broken (up to 15 s). Until it does, rsyslog writes
// into the closed connection, and the kernel takes the first write: what
// Postfix logs then is lost (README: rsyslog resends what it could not
// write, not what the kernel had taken), which is not what "logged while
// the ingester is down" means. Once it has noticed, it queues and resends.
func (l *Lab) awaitShipperNoticesDown() {
	host, err := maillogHost(l.LogFile("maillog"))
	if err != nil {
		return
	}
	broken := func() int {
		out, _ := os.ReadFile(l.LogFile("rsyslog.out"))
		return strings.Count(string(out), "cannot connect to 127.0.0.1:"+strconv.Itoa(l.ports.syslog))
	}
	before := broken()
	for i := 0; i < 75 && broken() == before; i++ {
		f, err := os.OpenFile(l.LogFile("maillog"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return
		}
		fmt.Fprintf(f, "%s %s postfix/postlogd[1]: maillab: a line for rsyslog while the ingester is down (%d)\n",
			time.Now().Format(time.Stamp), host, i)
		f.Close()
		time.Sleep(200 * time.Millisecond)
	}
}
