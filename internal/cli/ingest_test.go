package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/server"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
	"github.com/mailtrace/mailtrace/internal/testutil/harness"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

// End to end: the manager (NewManager, embedded SQLite store) with its
// ingest TCP listener takes Postfix lines over syslog, and a MessageTrace
// for one of those messages succeeds with that message's rows and status.
func TestManagerIngestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := kubetest.Start()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "trace.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addr := harness.FreeAddr(t)
	mgr, err := NewManager(env.Config, st, ManagerOptions{
		MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		Tenancy: TenancyDisabled, // one team; tenancy has its own tests
		Ingest: server.Options{
			SyslogTCP:      addr,
			InsecureNoAuth: true, // plain syslog on loopback
			Pipeline:       server.PipelineOptions{Correlator: ingest.Config{AcceptedDomains: []string{"example.com"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	// two messages logged a minute ago (RFC 3339 timestamps, as rsyslog forwards them)
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	ts := func(s int) string { return t0.Add(time.Duration(s) * time.Second).Format(time.RFC3339Nano) }
	lines := []string{
		ts(0) + " mx postfix/smtpd[10]: 4XyZ1a2B3cz7Qr: client=mail.example.net[198.51.100.7]",
		ts(0) + " mx postfix/cleanup[11]: 4XyZ1a2B3cz7Qr: message-id=<e2e-1@example.net>",
		ts(1) + " mx postfix/qmgr[12]: 4XyZ1a2B3cz7Qr: from=<alice@example.net>, size=2048, nrcpt=2 (queue active)",
		ts(2) + " mx postfix/lmtp[13]: 4XyZ1a2B3cz7Qr: to=<bob@example.com>, relay=dovecot[10.0.0.5]:24, delay=2, dsn=2.0.0, status=sent (250 2.0.0 Saved)",
		ts(2) + " mx postfix/lmtp[13]: 4XyZ1a2B3cz7Qr: to=<nobody@example.com>, relay=dovecot[10.0.0.5]:24, delay=2, dsn=5.1.1, status=bounced (550 5.1.1 User unknown)",
		ts(3) + " mx postfix/qmgr[12]: 4XyZ1a2B3cz7Qr: removed",
		ts(4) + " mx postfix/smtpd[10]: 4XyZ1a2B3cz7Qs: client=other.example.net[198.51.100.8]",
		ts(4) + " mx postfix/cleanup[11]: 4XyZ1a2B3cz7Qs: message-id=<e2e-2@example.net>",
		ts(5) + " mx postfix/qmgr[12]: 4XyZ1a2B3cz7Qs: from=<carol@example.net>, size=99, nrcpt=1 (queue active)",
	}
	var payload bytes.Buffer
	for _, l := range lines {
		m := "<22>" + l
		fmt.Fprintf(&payload, "%d %s", len(m), m) // octet-counted, as RFC 5425 senders frame
	}
	var conn net.Conn
	kubetest.Eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		conn, err = net.Dial("tcp", addr)
		return err == nil, fmt.Sprint(err)
	})
	if _, err := conn.Write(payload.Bytes()); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	ns := kubetest.Namespace(t, env.Client)
	mt := &v1alpha1.MessageTrace{
		ObjectMeta: metav1.ObjectMeta{Name: "from-the-wire", Namespace: ns},
		Spec:       v1alpha1.MessageTraceSpec{MessageID: "<e2e-1@example.net>"},
	}
	// the ingest is asynchronous: a trace created too early may find
	// nothing, so create traces until one sees the message
	var got v1alpha1.MessageTrace
	attempt := 0
	kubetest.Eventually(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		if got.Name == "" || finished(&got) {
			if got.Name != "" && len(got.Status.Rows) == 2 {
				return true, ""
			}
			attempt++
			obj := mt.DeepCopy()
			obj.Name = fmt.Sprintf("%s-%d", mt.Name, attempt)
			if err := env.Client.Create(context.Background(), obj); err != nil {
				return false, err.Error()
			}
			got = *obj
		}
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(&got), &got); err != nil {
			return false, err.Error()
		}
		return false, fmt.Sprintf("phase %s, %d rows", got.Status.Phase, len(got.Status.Rows))
	})
	if c := meta.FindStatusCondition(got.Status.Conditions, "Succeeded"); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("not Succeeded: %+v", got.Status.Conditions)
	}
	if got.Status.Phase != v1alpha1.PhaseSucceeded || got.Status.TotalMatches != 2 {
		t.Errorf("phase %s, totalMatches %d", got.Status.Phase, got.Status.TotalMatches)
	}
	want := map[string]v1alpha1.DeliveryStatus{"bob@example.com": "Delivered", "nobody@example.com": "Failed"}
	for _, r := range got.Status.Rows {
		if want[r.Recipient] != r.Status || r.Sender != "alice@example.net" || r.Direction != "Inbound" ||
			r.FromIP != "198.51.100.7" || r.Size != 2048 || !r.Received.Time.Equal(t0) || r.MessageID == "" {
			t.Errorf("row %+v", r)
		}
		delete(want, r.Recipient)
	}
	if len(want) != 0 {
		t.Errorf("no rows for %v", want)
	}
	if c := got.Status.Counts; c == nil || c.Delivered != 1 || c.Failed != 1 {
		t.Errorf("counts %+v", c)
	}
	// the other message, still in the queue, is there too
	n := 0
	kubetest.Eventually(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		pending := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("queued-%d", n), Namespace: ns},
			Spec: v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{"carol@*"}}}
		n++
		if err := env.Client.Create(context.Background(), pending); err != nil {
			return false, err.Error()
		}
		for i := 0; i < 100 && !finished(pending); i++ {
			time.Sleep(100 * time.Millisecond)
			_ = env.Client.Get(context.Background(), client.ObjectKeyFromObject(pending), pending)
		}
		return pending.Status.TotalMatches == 1 && pending.Status.Rows[0].Status == "GettingStatus",
			fmt.Sprintf("%s %+v", pending.Status.Phase, pending.Status.Rows)
	})
}

func finished(mt *v1alpha1.MessageTrace) bool {
	return mt.Status.Phase == v1alpha1.PhaseSucceeded || mt.Status.Phase == v1alpha1.PhaseFailed
}

// `mailtrace ingest --file` backfills plain and gzip files into a store;
// a second run over the same files changes nothing.
func TestIngestFileCommand(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "mail.log.1")
	lines := "Mar  1 10:00:00 mx postfix/smtpd[1]: ABCDE12345: client=a.example.net[192.0.2.1]\n" +
		"Mar  1 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<x@example.net>, size=10, nrcpt=1 (queue active)\n"
	if err := os.WriteFile(plain, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write([]byte("Mar  1 10:00:02 mx postfix/local[3]: ABCDE12345: to=<u@example.com>, relay=local, delay=1, dsn=2.0.0, status=sent (delivered to mailbox)\n" +
		"Mar  1 10:00:02 mx postfix/qmgr[2]: ABCDE12345: removed\nnot a log line\n"))
	_ = zw.Close()
	gz := filepath.Join(dir, "mail.log.gz")
	if err := os.WriteFile(gz, zb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	db := "sqlite://" + filepath.Join(dir, "trace.db")
	for i := 0; i < 2; i++ {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"ingest", "--file", plain, "--file", gz, "--store", db, "--accepted-domain", "example.com", "--retention", "0"}, nil, &out, &errOut)
		if code != 0 || !strings.Contains(out.String(), "lines 5 ") || !strings.Contains(out.String(), "not syslog: 1") {
			t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
		}
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "trace.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	year := time.Now().Year()
	for y := year; y >= year-1; y-- { // RFC 3164 lines take the latest year not in the future
		c, err := st.Count(context.Background(), mailflow.Query{Start: time.Date(y, 2, 1, 0, 0, 0, 0, time.UTC), End: time.Date(y, 4, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if c.Total > 0 {
			if c.Total != 1 || c.ByStatus[mailflow.StatusDelivered] != 1 {
				t.Errorf("counts %+v, want one delivered row", c)
			}
			return
		}
	}
	t.Error("nothing stored")
}

// `mailtrace ingest` with its default listeners and no credentials refuses
// to start, naming the flags that would fix it; so does the manager with
// an --ingest-* listener.
func TestIngestRequiresAuth(t *testing.T) {
	t.Setenv(EnvIngestToken, "")
	db := "sqlite://" + filepath.Join(t.TempDir(), "trace.db")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"ingest", "--store", db, "--syslog-tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics-bind-address", "0"}, nil, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "--insecure-no-auth") || !strings.Contains(errOut.String(), "--tls-client-ca") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	err := addIngestToManager(nil, nil, server.Options{HTTP: "127.0.0.1:0", FlagPrefix: "ingest-"})
	if err == nil || !strings.Contains(err.Error(), "--ingest-insecure-no-auth") {
		t.Errorf("manager: %v", err)
	}
}
