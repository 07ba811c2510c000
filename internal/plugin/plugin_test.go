package plugin

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

// TestMain stops the MinIO server the plugin test starts.
func TestMain(m *testing.M) { miniotest.Main(m) }

// writeKubeconfig writes a kubeconfig for cfg (envtest's admin) to dir.
func writeKubeconfig(t *testing.T, cfg *rest.Config, dir string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "envtest"
	p := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// pluginSeed: three messages a few hours ago; m2 bounced with a DSN.
func pluginSeed(now time.Time) []mailflow.Event {
	t0 := now.Add(-6 * time.Hour).Truncate(time.Second)
	recv := func(id, sender, subject string, at time.Time) mailflow.Event {
		return mailflow.Event{ID: id + "-r", Time: at, MessageTraceID: id, Type: mailflow.EventReceive, Source: "smtpd",
			Sender: sender, Subject: subject, MessageID: id + "@example.com", Direction: mailflow.DirectionOutbound, FromIP: "10.0.0.5", Received: at}
	}
	return []mailflow.Event{
		recv("m1", "alice@example.com", "Invoice 1", t0),
		{ID: "m1-d", Time: t0.Add(time.Minute), MessageTraceID: "m1", Recipient: "bob@partner.example", Type: mailflow.EventDeliver,
			Source: "smtp", Relay: "mx.partner.example[192.0.2.10]:25", DSN: "2.0.0", SMTPResponse: "250 2.0.0 Ok: queued", ToIP: "192.0.2.10"},
		recv("m2", "alice@example.com", "Invoice 2", t0.Add(time.Hour)),
		{ID: "m2-f", Time: t0.Add(time.Hour + time.Minute), MessageTraceID: "m2", Recipient: "nobody@partner.example", Type: mailflow.EventFail,
			Source: "smtp", Relay: "mx.partner.example[192.0.2.10]:25", DSN: "5.1.1", SMTPResponse: "550 5.1.1 <nobody@partner.example>: User unknown", Detail: "bounced"},
		recv("m3", "carol@other.example", "Lunch", t0.Add(2*time.Hour)),
		{ID: "m3-d", Time: t0.Add(2*time.Hour + time.Minute), MessageTraceID: "m3", Recipient: "dave@example.com", Type: mailflow.EventDeliver, Source: "local"},
	}
}

// TestKubectlPlugin runs every kubectl-mailtrace subcommand against a
// manager (NewManager, a seeded SQLite store, the default report store on
// MinIO) through a kubeconfig file and -n, as kubectl would run it.
func TestKubectlPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and MinIO")
	}
	env, err := kubetest.Start()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "trace.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Append(ctx, pluginSeed(time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	ep, ak, sk := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	mgr, err := cli.NewManager(env.Config, st, cli.ManagerOptions{
		MetricsBindAddress: "0", HealthProbeBindAddress: "0", Tenancy: cli.TenancyDisabled,
		Reports: cli.ReportOptions{Default: &objectstore.Config{Endpoint: ep, Bucket: bucket, Prefix: "reports", AccessKey: ak, SecretKey: sk, Insecure: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		mcancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	ns := kubetest.Namespace(t, env.Client)
	kubeconfig := writeKubeconfig(t, env.Config, dir)

	plugin := func(t *testing.T, args ...string) (string, string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...))
		err := cmd.ExecuteContext(ctx)
		return out.String(), errOut.String(), err
	}

	var runName string
	t.Run("run", func(t *testing.T) {
		out, errOut, err := plugin(t, "run", "--sender", "*@example.com", "--since", "1d", "--name", "alice")
		if err != nil {
			t.Fatalf("run: %v\n%s", err, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "SENDER ADDRESS") || !strings.Contains(lines[0], "RECIPIENT ADDRESS") {
			t.Fatalf("run printed\n%s", out)
		}
		// Newest first: the bounce, then the delivery.
		for i, want := range [][]string{{"nobody@partner.example", "Invoice 2", "Failed"}, {"bob@partner.example", "Invoice 1", "Delivered"}} {
			for _, w := range want {
				if !strings.Contains(lines[i+1], w) {
					t.Errorf("row %d %q lacks %q", i+1, lines[i+1], w)
				}
			}
		}
		if !strings.Contains(errOut, "2 of 2 matches") {
			t.Errorf("stderr: %s", errOut)
		}

		out, errOut, err = plugin(t, "run", "--status", "Failed", "--since", "1d", "-o", "wide", "--report")
		if err != nil {
			t.Fatalf("run --status Failed: %v\n%s", err, errOut)
		}
		if !strings.Contains(out, "MESSAGE TRACE ID") || !strings.Contains(out, "m2") || strings.Contains(out, "Invoice 1") {
			t.Errorf("failed, wide:\n%s", out)
		}
		if !strings.Contains(errOut, "kubectl mailtrace download") {
			t.Errorf("no hint of the report: %s", errOut)
		}
		runName = strings.Fields(strings.SplitN(errOut, "messagetrace.mailtrace.io/", 2)[1])[0]

		out, _, err = plugin(t, "run", "--recipient", "dave@example.com", "--since", "1d", "-o", "json")
		var mt v1alpha1.MessageTrace
		if err != nil || json.Unmarshal([]byte(out), &mt) != nil || mt.Kind != "MessageTrace" || len(mt.Status.Rows) != 1 || mt.Status.Rows[0].Sender != "carol@other.example" {
			t.Errorf("-o json: %v\n%s", err, out)
		}

		if _, _, err := plugin(t, "run", "--sender", "not an address"); err == nil || !strings.Contains(err.Error(), "local@domain") {
			t.Errorf("an invalid sender: %v", err)
		}
	})

	t.Run("list-and-get", func(t *testing.T) {
		out, _, err := plugin(t, "list")
		if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "alice") || !strings.Contains(out, "Succeeded") {
			t.Fatalf("list: %v\n%s", err, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "alice ") && !strings.Contains(l, " 2 ") {
				t.Errorf("alice's line lacks its 2 matches: %q", l)
			}
		}
		out, _, err = plugin(t, "get", "alice")
		if err != nil || !strings.Contains(out, "Invoice 2") || !strings.Contains(out, "Invoice 1") {
			t.Errorf("get: %v\n%s", err, out)
		}
		out, _, err = plugin(t, "get", "alice", "-o", "yaml")
		if err != nil || !strings.Contains(out, "kind: MessageTrace") || !strings.Contains(out, "totalMatches: 2") {
			t.Errorf("get -o yaml: %v\n%s", err, out)
		}
		if _, _, err := plugin(t, "get", "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("get of a missing trace: %v", err)
		}
	})

	t.Run("details", func(t *testing.T) {
		out, errOut, err := plugin(t, "details", "--trace-id", "m2", "--recipient", "nobody@partner.example")
		if err != nil {
			t.Fatalf("details: %v\n%s", err, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[1], "Receive") || !strings.Contains(lines[2], "Fail") ||
			!strings.Contains(lines[2], "5.1.1") || !strings.Contains(lines[2], "550 5.1.1 <nobody@partner.example>: User unknown") ||
			!strings.Contains(lines[2], "relay=mx.partner.example[192.0.2.10]:25") {
			t.Errorf("details printed\n%s", out)
		}
		if _, _, err := plugin(t, "details", "--trace-id", "m2"); err == nil || !strings.Contains(err.Error(), "--recipient") {
			t.Errorf("details without recipient: %v", err)
		}
	})

	t.Run("download", func(t *testing.T) {
		if runName == "" {
			t.Fatal("no trace with a report")
		}
		file := filepath.Join(dir, "failed.csv")
		out, errOut, err := plugin(t, "download", runName, "-f", file)
		if err != nil {
			t.Fatalf("download: %v\n%s", err, errOut)
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		mt := &v1alpha1.MessageTrace{}
		if err := env.Client.Get(ctx, clientKey(ns, runName), mt); err != nil || mt.Status.Report == nil {
			t.Fatalf("trace %s: %v %+v", runName, err, mt.Status)
		}
		obj, err := miniotest.Client(t).GetObject(ctx, bucket, mt.Status.Report.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("downloaded %d bytes, the bucket holds %d (%v)", len(got), len(want), err)
		}
		sum := sha256.Sum256(got)
		if !strings.Contains(out, file) || !strings.Contains(out, "1 rows") || !strings.Contains(out, hex.EncodeToString(sum[:])) {
			t.Errorf("download printed %q", out)
		}
		if !strings.Contains(string(got), "nobody@partner.example") {
			t.Errorf("report:\n%s", got)
		}
		var drs v1alpha1.DownloadRequestList
		if err := env.Client.List(ctx, &drs, clientNS(ns)); err != nil || len(drs.Items) != 0 && drs.Items[0].DeletionTimestamp == nil {
			t.Errorf("the DownloadRequest is left behind: %v %d", err, len(drs.Items))
		}
		if _, _, err := plugin(t, "download", "alice", "-f", filepath.Join(dir, "x.csv")); err == nil || !strings.Contains(err.Error(), string(v1alpha1.ReasonNoReport)) {
			t.Errorf("download of a trace without a report: %v", err)
		}
		if _, _, err := plugin(t, "download", "no-such-trace"); err == nil || !strings.Contains(err.Error(), string(v1alpha1.ReasonMessageTraceNotFound)) {
			t.Errorf("download of a missing trace: %v", err)
		}
	})

	// A gzip report (Content-Encoding gzip in the bucket) is downloaded as
	// stored, named NAME.csv.gz, and its SHA-256 is the report's.
	t.Run("download-gzip", func(t *testing.T) {
		mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gz"}, Spec: v1alpha1.MessageTraceSpec{
			SenderAddresses: []v1alpha1.AddressPattern{"*@example.com"}, Window: &metav1.Duration{Duration: 24 * time.Hour},
			Report: &v1alpha1.ReportSpec{Always: true, Gzip: true}}}
		if err := env.Client.Create(ctx, mt); err != nil {
			t.Fatal(err)
		}
		t.Chdir(t.TempDir()) // the default file name is relative
		out, errOut, err := plugin(t, "download", "gz")
		if err != nil {
			t.Fatalf("download of a gzip report: %v\n%s", err, errOut)
		}
		got, err := os.ReadFile("gz.csv.gz")
		if err != nil {
			t.Fatalf("no gz.csv.gz: %v", err)
		}
		if err := env.Client.Get(ctx, clientKey(ns, "gz"), mt); err != nil || mt.Status.Report == nil || mt.Status.Report.SHA256 == "" {
			t.Fatalf("trace gz: %v %+v", err, mt.Status)
		}
		sum := sha256.Sum256(got)
		if hex.EncodeToString(sum[:]) != mt.Status.Report.SHA256 {
			t.Errorf("gz.csv.gz (%d bytes) has sha256 %x, the report's is %s", len(got), sum, mt.Status.Report.SHA256)
		}
		obj, err := miniotest.Client(t).GetObject(ctx, bucket, mt.Status.Report.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("downloaded %d bytes, the bucket holds %d (%v)", len(got), len(want), err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("gz.csv.gz is not gzip: %v", err)
		}
		csv, err := io.ReadAll(zr)
		if err != nil || !strings.Contains(string(csv), "nobody@partner.example") || !strings.Contains(string(csv), "bob@partner.example") {
			t.Errorf("the report inflates to (%v)\n%s", err, csv)
		}
		if !strings.Contains(out, "gz.csv.gz") || !strings.Contains(out, mt.Status.Report.SHA256) || !strings.Contains(out, "matches") {
			t.Errorf("download printed %q", out)
		}
	})

	// A trace that cannot progress (its ReportStore does not exist) ends
	// the wait of run and download at once, with the reason.
	t.Run("blocked", func(t *testing.T) {
		_, errOut, err := plugin(t, "run", "--since", "1d", "--report", "--report-store", "missing", "--name", "blocked", "--timeout", "4m")
		if err == nil || !strings.Contains(err.Error(), string(v1alpha1.ReasonReportStoreNotFound)) || !strings.Contains(err.Error(), "missing") ||
			strings.Contains(err.Error(), "not done after") {
			t.Fatalf("run with a missing ReportStore: %v\n%s", err, errOut)
		}
		_, _, err = plugin(t, "download", "blocked", "--timeout", "4m", "-f", filepath.Join(dir, "blocked.csv"))
		if err == nil || !strings.Contains(err.Error(), string(v1alpha1.ReasonReportStoreNotFound)) || strings.Contains(err.Error(), "not done after") {
			t.Errorf("download of a blocked trace: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "blocked.csv")); err == nil {
			t.Error("download of a blocked trace wrote a file")
		}
	})
}

func clientKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func clientNS(ns string) client.ListOption { return client.InNamespace(ns) }
