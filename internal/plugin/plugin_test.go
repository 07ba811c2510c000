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
		// Without --recipient: every recipient's timeline, with a RECIPIENT column.
		out, errOut, err = plugin(t, "details", "--trace-id", "m2")
		lines = strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || len(lines) != 3 || !strings.Contains(lines[0], "RECIPIENT") || !strings.Contains(lines[2], "nobody@partner.example") ||
			!strings.Contains(lines[2], "Fail") {
			t.Errorf("details without recipient: %v\n%s%s", err, out, errOut)
		}
		// A recipient that is not one of the message's is refused, naming those there are.
		_, _, err = plugin(t, "details", "--trace-id", "m2", "--recipient", "bob@partner.example")
		if err == nil || !strings.Contains(err.Error(), string(v1alpha1.ReasonNotARecipient)) || !strings.Contains(err.Error(), "its recipients: nobody@partner.example") {
			t.Errorf("details of a stranger: %v", err)
		}
		// --event and --time-zone.
		out, errOut, err = plugin(t, "details", "--trace-id", "m2", "--event", "fail", "--time-zone", "Asia/Tokyo")
		lines = strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME (Asia/Tokyo)") || !strings.Contains(lines[1], "Fail") {
			t.Fatalf("details --event fail --time-zone Asia/Tokyo: %v\n%s%s", err, out, errOut)
		}
		var mt v1alpha1.MessageTrace
		name := strings.Fields(strings.SplitN(errOut, "messagetrace.mailtrace.io/", 2)[1])[0]
		if err := env.Client.Get(ctx, clientKey(ns, name), &mt); err != nil || len(mt.Status.Details.Events) != 1 {
			t.Fatalf("the details trace: %v %+v", err, mt.Status.Details)
		}
		tokyo, _ := time.LoadLocation("Asia/Tokyo")
		if want := mt.Status.Details.Events[0].Time.In(tokyo).Format("2006-01-02 15:04:05"); !strings.HasPrefix(lines[1], want) {
			t.Errorf("the Fail event at %s in Tokyo, printed %q", want, lines[1])
		}
		if _, _, err := plugin(t, "details", "--trace-id", "m2", "--event", "Bounce"); err == nil || !strings.Contains(err.Error(), "not an event type") {
			t.Errorf("details --event Bounce: %v", err)
		}
	})

	// run pages with --limit and --continue-from; the pages together are
	// the rows of one trace; run's traces are autosaved as the caller.
	t.Run("continue-and-autosave", func(t *testing.T) {
		_, errOut, err := plugin(t, "run", "--since", "1d", "--limit", "2", "--name", "page1")
		if err != nil || !strings.Contains(errOut, "kubectl mailtrace run --continue-from page1") {
			t.Fatalf("run --limit 2: %v\n%s", err, errOut)
		}
		out, errOut, err := plugin(t, "run", "--continue-from", "page1", "--name", "page2", "--time-zone", "Asia/Tokyo")
		if err != nil || strings.Contains(errOut, "--continue-from") || !strings.Contains(out, "RECEIVED (Asia/Tokyo)") {
			t.Fatalf("run --continue-from page1: %v\n%s%s", err, out, errOut)
		}
		var p1, p2 v1alpha1.MessageTrace
		if err := env.Client.Get(ctx, clientKey(ns, "page1"), &p1); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Get(ctx, clientKey(ns, "page2"), &p2); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range append(p1.Status.Rows, p2.Status.Rows...) {
			got = append(got, r.MessageTraceID)
		}
		if strings.Join(got, ",") != "m3,m2,m1" || p2.Status.Continue != "" || p2.Spec.Continue != p1.Status.Continue {
			t.Errorf("pages of 2: %v (continue %q)", got, p2.Status.Continue)
		}
		if _, _, err := plugin(t, "run", "--continue-from", "page2"); err == nil || !strings.Contains(err.Error(), "no more rows") {
			t.Errorf("continue from the last page: %v", err)
		}
		if _, _, err := plugin(t, "run", "--continue-from", "page1", "--sender", "x@example.com"); err == nil || !strings.Contains(err.Error(), "leave out --sender") {
			t.Errorf("continue with a filter flag: %v", err)
		}
		me, err := WhoAmI(ctx, env.Client)
		if err != nil || me == "" {
			t.Fatalf("WhoAmI: %q, %v", me, err)
		}
		if !p1.IsAutosavedBy(me) {
			t.Errorf("a trace of run is not autosaved as %s: %v %v", me, p1.Labels, p1.Annotations)
		}
		if _, _, err := plugin(t, "run", "--since", "1d", "--name", "unsaved", "--autosave=false"); err != nil {
			t.Fatal(err)
		}
		var u v1alpha1.MessageTrace
		if err := env.Client.Get(ctx, clientKey(ns, "unsaved"), &u); err != nil || u.IsAutosaved() || u.CreatedBy() != "" {
			t.Errorf("--autosave=false: %v %v %v", err, u.Labels, u.Annotations)
		}
		out, _, err = plugin(t, "list", "-o", "wide", "--time-zone", "Asia/Tokyo")
		if err != nil || !strings.Contains(out, "FROM (Asia/Tokyo)") || !strings.Contains(out, me) {
			t.Errorf("list -o wide --time-zone Asia/Tokyo: %v\n%s", err, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "page1 ") {
				tokyo, _ := time.LoadLocation("Asia/Tokyo")
				if want := p1.Status.TimeRange.Start.In(tokyo).Format("2006-01-02 15:04:05"); !strings.Contains(l, want) {
					t.Errorf("page1's line %q lacks its start in Tokyo, %s", l, want)
				}
			}
		}
		out, _, err = plugin(t, "list", "--mine")
		if err != nil || !strings.Contains(out, "page1") || !strings.Contains(out, "page2") || strings.Contains(out, "unsaved") {
			t.Errorf("list --mine: %v\n%s", err, out)
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
