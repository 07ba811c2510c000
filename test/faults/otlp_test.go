package faults

import (
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
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/ingest/server"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/harness"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// files and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ingest"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
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
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// collectorBatch is one message's Postfix lines as the OpenTelemetry
// Collector's syslog receiver hands them to its otlphttp exporter: a log
// record per line, the raw line as the body, the syslog fields as
// attributes, the line's time as the record's Timestamp.
func collectorBatch(t0 time.Time, host, qid, sender, rcpt string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("host.name", "otel-collector-0")
	sl := rl.ScopeLogs().AppendEmpty()
	for i, l := range []struct{ app, pid, msg string }{
		{"postfix/smtpd", "101", qid + ": client=mx.example.net[192.0.2.1]"},
		{"postfix/qmgr", "102", qid + ": from=<" + sender + ">, size=1234, nrcpt=1 (queue active)"},
		{"postfix/smtp", "103", qid + ": to=<" + rcpt + ">, relay=r[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 ok)"},
		{"postfix/qmgr", "102", qid + ": removed"},
	} {
		at := t0.Add(time.Duration(i) * time.Second)
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Second)))
		lr.Body().SetStr(at.Format(time.Stamp) + " " + host + " " + l.app + "[" + l.pid + "]: " + l.msg)
		a := lr.Attributes()
		a.PutStr("appname", l.app)
		a.PutStr("hostname", host)
		a.PutStr("proc_id", l.pid)
		a.PutStr("message", l.msg)
		a.PutInt("priority", 22)
	}
	return ld
}

// OpenTelemetry logs into the manager's ingester over OTLP/HTTP with TLS
// and the bearer token, one batch as protobuf and one as JSON (built with
// the Collector's data model, pdata), into PostgreSQL through the
// write-ahead log; a MessageTrace for each sender answers with its
// message Delivered.
func TestOTLPLogsToMessageTrace(t *testing.T) {
	env := kubetest.Get(t)
	st, _ := pgStore(t)
	const token = "otlp-SECRET-token-7e21"
	certFile, keyFile, pool := selfSigned(t)
	addr := harness.FreeAddr(t)
	startManager(t, env.Config, st, cli.ManagerOptions{
		MaxConcurrentReconciles: 2,
		Ingest: server.Options{HTTP: addr, FlagPrefix: "ingest-", Token: token, TLSCertFile: certFile, TLSKeyFile: keyFile,
			Pipeline: server.PipelineOptions{Correlator: corr, StateFile: filepath.Join(t.TempDir(), "ingest-state.json")}},
	})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	batches := []struct {
		ctype, sender, rcpt string
		body                func() ([]byte, error)
	}{
		{"application/x-protobuf", "proto@example.net", "p@example.com", func() ([]byte, error) {
			return plogotlp.NewExportRequestFromLogs(collectorBatch(t0, "mx1", "4PbC4x469Jz3tBr", "proto@example.net", "p@example.com")).MarshalProto()
		}},
		{"application/json", "json@example.net", "j@example.com", func() ([]byte, error) {
			return plogotlp.NewExportRequestFromLogs(collectorBatch(t0.Add(time.Minute), "mx1", "4PbC4x469Jz3tBs", "json@example.net", "j@example.com")).MarshalJSON()
		}},
	}
	for _, b := range batches {
		body, err := b.body()
		if err != nil {
			t.Fatal(err)
		}
		// the manager's listener comes up with the manager
		kubetest.Eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
			req, _ := http.NewRequest("POST", "https://"+addr+server.OTLPLogsPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", b.ctype)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := c.Do(req)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			rb, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %q", b.ctype, resp.StatusCode, rb)
			}
			er := plogotlp.NewExportResponse()
			if b.ctype == "application/json" {
				err = er.UnmarshalJSON(rb)
			} else {
				err = er.UnmarshalProto(rb)
			}
			if err != nil || er.PartialSuccess().RejectedLogRecords() != 0 {
				t.Fatalf("%s: answer %q (%v): %d rejected", b.ctype, rb, err, er.PartialSuccess().RejectedLogRecords())
			}
			return true, ""
		})
	}
	// the events are stored a moment after the 200 (the correlator reads
	// the write-ahead log on)
	kubetest.Eventually(t, time.Minute, 50*time.Millisecond, func() (bool, string) {
		p, err := st.Trace(context.Background(), mailflow.Query{Start: t0.Add(-time.Minute), End: t0.Add(time.Hour)}, "", 10)
		if err != nil {
			return false, err.Error()
		}
		delivered := 0
		for _, r := range p.Rows {
			if r.Status == mailflow.StatusDelivered {
				delivered++
			}
		}
		return delivered == len(batches), fmt.Sprintf("%d rows, %d delivered", len(p.Rows), delivered)
	})
	ns := kubetest.Namespace(t, env.Client)
	for i, b := range batches {
		mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: "otlp-" + []string{"proto", "json"}[i], Namespace: ns},
			Spec: v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{v1alpha1.AddressPattern(b.sender)},
				StartTime: abs(t0.Add(-time.Minute)), EndTime: abs(t0.Add(time.Hour))}}
		if err := env.Client.Create(context.Background(), mt); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range batches {
		var mt v1alpha1.MessageTrace
		key := client.ObjectKey{Namespace: ns, Name: "otlp-" + []string{"proto", "json"}[i]}
		kubetest.Eventually(t, 2*time.Minute, 100*time.Millisecond, func() (bool, string) {
			if err := env.Client.Get(context.Background(), key, &mt); err != nil {
				return false, err.Error()
			}
			return finished(&mt), string(mt.Status.Phase)
		})
		if mt.Status.Phase != v1alpha1.PhaseSucceeded || len(mt.Status.Rows) != 1 {
			t.Fatalf("%s: phase %s, rows %+v, conditions %+v", b.ctype, mt.Status.Phase, mt.Status.Rows, mt.Status.Conditions)
		}
		row := mt.Status.Rows[0]
		if row.Status != "Delivered" || row.Recipient != b.rcpt || row.Sender != b.sender {
			t.Errorf("%s: row %+v, want %s to %s Delivered", b.ctype, row, b.sender, b.rcpt)
		}
		t.Logf("%s batch: trace %s %s, row: %s -> %s %s (%s)", b.ctype, key.Name, mt.Status.Phase, row.Sender, row.Recipient, row.Status, row.Direction)
	}
}
