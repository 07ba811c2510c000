// Package console tests the message trace console (`kubectl mailtrace ui`,
// internal/console) in a real browser: Debian's Chromium (hack/chromium.sh)
// driven headless by chromedp, against an envtest control plane with its
// RBAC authorizer, the whole manager (internal/cli.NewManager, tenancy on)
// on a seeded SQLite store, and MinIO as the default report store. Each
// user has credentials of their own (envtest's AddUser: a client
// certificate) in a kubeconfig of their own, and runs the real `ui`
// subcommand with it, as they would from a terminal.
//
// The steps are the Japanese seed's: open a default query; start a 2-day
// trace for one recipient with the summary report; click a row and read why
// it failed (DSN and the remote server's reply); a 30-day trace that ends
// in a downloaded CSV whose SHA-256 matches status; and a user whose
// namespace is granted only *@a.example never sees another team's row on
// any page. With MAILTRACE_CONSOLE_SCREENSHOTS=dir it also saves a PNG of
// each page, in English and Japanese (docs/console/ holds them).
package console

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/console"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/plugin"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

// need skips the test (fails it under CI) when a component is missing.
func need(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// chromiumPath finds the browser hack/chromium.sh installs.
func chromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(b); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium not found: run hack/chromium.sh (make test-deps installs it), or set CHROMIUM to a Chromium binary")
}

// The seed: what the Japanese walk-through looks for, another team's mail,
// a message 20 days old for the 30-day report, and 1,100 messages of a
// bulk sender for the 1,000-row page.
const (
	failedRcpt   = "nobody@remote.example"
	failedReply  = "550 5.1.1 <nobody@remote.example>: Recipient address rejected: User unknown in virtual mailbox table"
	secretSender = "secret@b.example"
	secretRcpt   = "boss@b.example"
	secretSubj   = "Team B secret plans"
	otherRcpt    = "q@c.example"
	bulkSender   = "bulk@d.example"
	bulkCount    = 1100
)

func seed(now time.Time) []mailflow.Event {
	recv := func(id, sender, subject string, at time.Time, dir mailflow.Direction) mailflow.Event {
		return mailflow.Event{ID: id + "-r", Time: at, MessageTraceID: id, Type: mailflow.EventReceive, Source: "smtpd",
			Sender: sender, Subject: subject, MessageID: id + "@mail.example", Direction: dir, FromIP: "198.51.100.7",
			ClientHostname: "mail.sender.example", ClientIP: "198.51.100.7", Received: at, Size: 2048}
	}
	deliver := func(id, rcpt string, at time.Time) mailflow.Event {
		return mailflow.Event{ID: id + "-d-" + rcpt, Time: at, MessageTraceID: id, Recipient: rcpt, Type: mailflow.EventDeliver,
			Source: "smtp", Relay: "mx.remote.example[192.0.2.10]:25", DSN: "2.0.0", SMTPResponse: "250 2.0.0 Ok: queued as 4Xy", ToIP: "192.0.2.10"}
	}
	t0 := now.Add(-6 * time.Hour).Truncate(time.Second)
	evs := []mailflow.Event{
		recv("m1", "x@b.example", "Quarterly figures", t0, mailflow.DirectionInbound), deliver("m1", "info@a.example", t0.Add(time.Minute)),
		recv("m2", "info@a.example", "Invoice 2041", t0.Add(time.Hour), mailflow.DirectionOutbound),
		{ID: "m2-defer", Time: t0.Add(time.Hour + 30*time.Second), MessageTraceID: "m2", Recipient: failedRcpt, Type: mailflow.EventDefer, Source: "smtp",
			Relay: "mx.remote.example[192.0.2.10]:25", DSN: "4.4.1", Detail: "connection timed out"},
		{ID: "m2-fail", Time: t0.Add(time.Hour + time.Minute), MessageTraceID: "m2", Recipient: failedRcpt, Type: mailflow.EventFail, Source: "smtp",
			Relay: "mx.remote.example[192.0.2.10]:25", DSN: "5.1.1", SMTPResponse: failedReply, Detail: "bounced", ToIP: "192.0.2.10"},
		recv("m3", "p@b.example", "Lunch", t0.Add(2*time.Hour), mailflow.DirectionOutbound), deliver("m3", otherRcpt, t0.Add(2*time.Hour+time.Minute)),
		recv("m4", secretSender, secretSubj, t0.Add(3*time.Hour), mailflow.DirectionInternal), deliver("m4", secretRcpt, t0.Add(3*time.Hour+time.Minute)),
	}
	old := now.Add(-20 * 24 * time.Hour).Truncate(time.Second)
	evs = append(evs, recv("m5", "y@a.example", "Old news", old, mailflow.DirectionOutbound), deliver("m5", "z@remote.example", old.Add(time.Minute)))
	bulk := now.Add(-3 * time.Hour).Truncate(time.Second)
	for i := range bulkCount {
		id := fmt.Sprintf("bulk%04d", i)
		at := bulk.Add(time.Duration(i) * time.Second)
		evs = append(evs, recv(id, bulkSender, fmt.Sprintf("Newsletter %d", i), at, mailflow.DirectionOutbound),
			deliver(id, fmt.Sprintf("reader%04d@remote.example", i), at.Add(time.Second)))
	}
	return evs
}

// writeKubeconfig writes a kubeconfig for cfg with ns as its namespace.
func writeKubeconfig(t *testing.T, cfg *rest.Config, ns, file string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user", Namespace: ns}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, file); err != nil {
		t.Fatal(err)
	}
	return file
}

// startUI runs `kubectl mailtrace ui --no-browser` with a kubeconfig, as a
// user would, and returns the URL it prints.
func startUI(t *testing.T, kubeconfig string) string {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: pw, ErrOut: io.Discard})
	cmd.SetArgs([]string{"--kubeconfig", kubeconfig, "ui", "--no-browser", "--accepted-domain", "a.example"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kubectl mailtrace ui: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("kubectl mailtrace ui printed no URL: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	f := strings.Fields(line)
	url := f[len(f)-1]
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.Contains(url, "/login?token=") {
		t.Fatalf("kubectl mailtrace ui printed %q", line)
	}
	return url
}

// tab is one browser context (cookies of its own) acting as one person.
type tab struct {
	t        *testing.T
	ctx      context.Context
	base     string // http://127.0.0.1:port
	download string // where downloads land
}

// in returns tb reporting to t: a subtest's failure must be the
// subtest's (a parent's FailNow from a subtest panics, hiding the reason).
func (tb *tab) in(t *testing.T) *tab {
	c := *tb
	c.t = t
	return &c
}

// newTab opens a browser context of its own (cookies, downloads) in the
// browser of root, speaking lang in time zone tz.
func newTab(t *testing.T, root context.Context, lang, tz string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run opens the tab, which lives as long as the context of
	// that run: it gets the tab's own context, with no deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	dl := t.TempDir()
	tb := &tab{t: t, ctx: ctx, download: dl}
	yes := true
	tb.run(
		call(network.Enable, network.EnableParams{}),
		call(network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}}),
		call(emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: tz}),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow,
				DownloadPath: dl, EventsEnabled: &yes, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID})
			return err
		}))
	return tb
}

// call is a protocol command as a step.
func call[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cmd, params)
		return err
	})
}

func (tb *tab) run(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	for i, st := range steps {
		if err := chromedp.Do(ctx, st); err != nil {
			tb.t.Fatalf("browser: step %d of %d: %v; page:\n%s", i+1, len(steps), err, tb.text())
		}
	}
}

// eval is the value of a JavaScript expression on the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// language switches the Accept-Language the console reads.
func (tb *tab) language(lang string) {
	tb.run(call(network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}}))
}

// open signs in with the printed URL.
func (tb *tab) open(url string) {
	tb.base = url[:strings.Index(url, "/login")]
	tb.navigate(url)
	tb.waitJS(`!!document.querySelector("#h-default")`, "the home page after sign-in")
}

func (tb *tab) visit(path string) { tb.navigate(tb.base + path) }

// navigate opens url and waits until a new document has loaded. It does
// not wait on the navigation itself, which the console's script may
// replace once (a reload with the browser's time zone).
func (tb *tab) navigate(url string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__mailtraceOld = true`))
	cancel()
	tb.run(call(page.Navigate, page.NavigateParams{URL: url}))
	tb.waitJS(`!window.__mailtraceOld && document.readyState === "complete"`, "the page "+url)
}

// waitJS polls a JavaScript condition across the pages' own refreshes
// (a running trace's page reloads itself) until it holds.
func (tb *tab) waitJS(cond, what string) {
	tb.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("waiting for %s: %s never held (last error %v); page:\n%s", what, cond, err, tb.text())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// text is the page's visible text.
func (tb *tab) text() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

// html is the page's whole markup (attributes, hidden parts included).
func (tb *tab) html() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	return s
}

func (tb *tab) path() string {
	return eval[string](tb, `location.pathname`)
}

// shot saves the page as dir/name.png when screenshots are asked for.
func (tb *tab) shot(name string) {
	dir := os.Getenv("MAILTRACE_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

func TestConsoleInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane, MinIO and a browser")
	}
	chromium, err := chromiumPath()
	need(t, err)
	assets, err := kubetest.AssetsDir()
	need(t, err)
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	te := &envtest.Environment{BinaryAssetsDirectory: assets, CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true, Scheme: kubetest.Scheme(), ControlPlaneStartTimeout: 2 * time.Minute, ControlPlaneStopTimeout: time.Minute}
	cfg, err := te.Start()
	need(t, err)
	t.Cleanup(func() { _ = te.Stop() })
	admin, err := client.New(cfg, client.Options{Scheme: kubetest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	endpoint, accessKey, secretKey := miniotest.Server(t)
	bucket := miniotest.Bucket(t)

	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "trace.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Append(ctx, seed(time.Now().UTC())); err != nil {
		t.Fatal(err)
	}

	opNS, teamA := kubetest.Namespace(t, admin), kubetest.Namespace(t, admin)
	installAggregatedRoles(t, admin, root)
	pol := &v1alpha1.TracePolicy{ObjectMeta: metav1.ObjectMeta{Name: "grant-" + teamA},
		Spec: v1alpha1.TracePolicySpec{Namespaces: []string{teamA}, Addresses: []v1alpha1.AddressPattern{"*@a.example"}}}
	if err := admin.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	mgr, err := cli.NewManager(cfg, st, cli.ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		OperatorNamespace: opNS, AllowDestinations: []string{"127.0.0.0/8"},
		Reports: cli.ReportOptions{Default: &objectstore.Config{Endpoint: endpoint, Bucket: bucket, Prefix: "reports", AccessKey: accessKey, SecretKey: secretKey, Insecure: true}}})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	// The admin (envtest's, in the operator's namespace) and alice, a user
	// of her own with the mailtrace roles in team A's namespace only.
	adminKC := writeKubeconfig(t, cfg, opNS, filepath.Join(dir, "admin.kubeconfig"))
	alice, err := te.AddUser(envtest.User{Name: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bind(t, admin, teamA, "alice")
	aliceKC := writeKubeconfig(t, alice.Config(), teamA, filepath.Join(dir, "alice.kubeconfig"))
	// carol shares alice's namespace: her autosaved queries are hers alone.
	carol, err := te.AddUser(envtest.User{Name: "carol"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bind(t, admin, teamA, "carol")
	carolKC := writeKubeconfig(t, carol.Config(), teamA, filepath.Join(dir, "carol.kubeconfig"))
	installAdmissionPolicy(t, admin, root)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")), chromedp.WindowSize(1400, 1000))
	t.Cleanup(cancelAlloc)
	// The browser, started once with no deadline (it lives as long as the
	// context of its first run); each person gets a browser context in it.
	bctx, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(bctx); err != nil {
		need(t, fmt.Errorf("starting %s: %w", chromium, err))
	}

	get := func(name string) *v1alpha1.MessageTrace {
		mt := &v1alpha1.MessageTrace{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: opNS, Name: name}, mt); err != nil {
			t.Fatal(err)
		}
		return mt
	}
	traceName := func(tb *tab) string {
		p := tb.path()
		i := strings.Index(p, "/traces/")
		if i < 0 {
			t.Fatalf("not on a trace's page: %s", p)
		}
		return p[i+len("/traces/"):]
	}

	// The Japanese seed, step by step, as the operator's admin.
	ja := newTab(t, bctx, "ja,en;q=0.5", "Asia/Tokyo")
	ja.open(startUI(t, adminKC))
	var twoDay, thirtyDay string

	t.Run("home lists the five default queries", func(t *testing.T) {
		ja := ja.in(t)
		txt := ja.text()
		for _, want := range []string{"既定のクエリ", "最終日にプライマリ ドメインから送信されたメッセージ", "最終日にプライマリ ドメインで受信したメッセージ",
			"組織内のユーザーへの配信が保留になっているメッセージ", "過去 7 日間の検疫されたすべてのメッセージ", "過去 7 日間の配信できなかったすべてのメッセージ",
			"カスタム クエリ", "自動保存されたクエリ", "ダウンロード可能なレポート", "+ 追跡を開始"} {
			if !strings.Contains(txt, want) {
				t.Errorf("home lacks %q:\n%s", want, txt)
			}
		}
		ja.shot("home-ja")
	})

	t.Run("a default query: undeliverable in the past 7 days", func(t *testing.T) {
		ja := ja.in(t)
		ja.visit("/ns/" + opNS + "/")
		ja.run(chromedp.Click(chromedp.CSS("#default-failed")))
		ja.waitJS(`!!document.querySelector("#rows") || !!document.querySelector("#no-rows")`, "the failed query's rows")
		txt := ja.text()
		if !strings.Contains(txt, failedRcpt) || !strings.Contains(txt, "失敗") {
			t.Errorf("the failed query's page:\n%s", txt)
		}
		if mt := get(traceName(ja)); len(mt.Spec.DeliveryStatuses) != 1 || mt.Spec.DeliveryStatuses[0] != "Failed" || mt.Spec.Window.Duration != 7*24*time.Hour {
			t.Errorf("the default query made %+v", mt.Spec)
		}
	})

	t.Run("a 2-day trace for one recipient with the summary report", func(t *testing.T) {
		ja := ja.in(t)
		ja.visit("/ns/" + opNS + "/")
		ja.run(chromedp.Click(chromedp.CSS(`a[href$="/new"].button`)))
		ja.waitJS(`!!document.querySelector("#recipients")`, "the new-trace form")
		txt := ja.text()
		for _, want := range []string{"送信者", "受信者", "時間の範囲", "配信状態", "メッセージ ID", "方向", "元のクライアント IP アドレス", "要約レポート", "検索"} {
			if !strings.Contains(txt, want) {
				t.Errorf("the form lacks %q", want)
			}
		}
		ja.shot("new-ja")
		ja.run(chromedp.SendKeys(chromedp.ID("recipients"), failedRcpt), chromedp.Click(chromedp.ID("range-2")),
			chromedp.Click(chromedp.ID("report")), chromedp.Click(chromedp.ID("search")))
		ja.waitJS(`!!document.querySelector("#rows")`, "the 2-day trace's rows")
		twoDay = traceName(ja)
		mt := get(twoDay)
		if len(mt.Spec.RecipientAddresses) != 1 || mt.Spec.RecipientAddresses[0] != failedRcpt || mt.Spec.Window.Duration != 48*time.Hour ||
			mt.Spec.Report == nil || !mt.Spec.Report.Always || mt.Spec.Report.Type != v1alpha1.ReportSummary {
			t.Errorf("the form made %+v", mt.Spec)
		}
		n := eval[int](ja, `document.querySelectorAll("#rows tbody tr").length`)
		if n != 1 || !strings.Contains(ja.text(), "Invoice 2041") {
			t.Errorf("%d rows, want the one to %s:\n%s", n, failedRcpt, ja.text())
		}
	})

	t.Run("click the row and read why it failed", func(t *testing.T) {
		ja := ja.in(t)
		ja.run(chromedp.Click(chromedp.CSS(`#rows tbody tr td:nth-child(3)`))) // anywhere in the row, as the seed says
		ja.waitJS(`!!document.querySelector("#details .timeline")`, "the details panel")
		panel := eval[string](ja, `document.querySelector("#details").innerText`)
		for _, want := range []string{"メッセージの詳細", "失敗", "5.1.1", failedReply, "mx.remote.example[192.0.2.10]:25", "延期", "4.4.1", "受信"} {
			if !strings.Contains(panel, want) {
				t.Errorf("the details panel lacks %q:\n%s", want, panel)
			}
		}
		focused := eval[string](ja, `document.activeElement ? document.activeElement.id : ""`)
		if focused != "details" {
			t.Errorf("focus is on %q after opening the details, want the panel", focused)
		}
		ja.shot("results-details-ja")
	})

	t.Run("a 30-day trace ends in a downloaded CSV whose SHA-256 matches status", func(t *testing.T) {
		ja := ja.in(t)
		ja.visit("/ns/" + opNS + "/new")
		ja.run(chromedp.SendKeys(chromedp.ID("senders"), "*@a.example"), chromedp.Click(chromedp.ID("range-30")), chromedp.Click(chromedp.ID("search")))
		ja.waitJS(`!!document.querySelector("#download")`, "the report's download button")
		thirtyDay = traceName(ja)
		if txt := ja.text(); !strings.Contains(txt, "10 日を超える") {
			t.Errorf("a 30-day trace does not say its answer is a report:\n%s", txt)
		}
		ja.shot("report-ja")
		ja.run(chromedp.Click(chromedp.ID("download")))
		var file string
		kubetest.Eventually(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
			m, _ := filepath.Glob(filepath.Join(ja.download, thirtyDay+".csv*"))
			for _, f := range m {
				if !strings.HasSuffix(f, ".crdownload") {
					file = f
					return true, ""
				}
			}
			return false, fmt.Sprintf("no download in %s yet (%v)", ja.download, m)
		})
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		rep := get(thirtyDay).Status.Report
		if rep == nil || rep.SHA256 == "" || hex.EncodeToString(sum[:]) != rep.SHA256 {
			t.Fatalf("downloaded %s (%d bytes, sha256 %x); status.report %+v", file, len(b), sum, rep)
		}
		if !strings.Contains(string(b), "Old news") || !strings.Contains(string(b), "Invoice 2041") || strings.Contains(string(b), secretSubj) {
			t.Errorf("the CSV holds:\n%s", b)
		}
		t.Logf("downloaded %s: %d bytes, sha256 %s = status.report.sha256", filepath.Base(file), len(b), rep.SHA256)
		var drs v1alpha1.DownloadRequestList
		if err := admin.List(ctx, &drs, client.InNamespace(opNS)); err != nil || len(drs.Items) != 0 {
			t.Errorf("DownloadRequests left behind: %d (%v)", len(drs.Items), err)
		}
	})

	t.Run("1,000 rows on one page, every row reachable", func(t *testing.T) {
		ja := ja.in(t)
		ja.visit("/ns/" + opNS + "/new")
		ja.run(chromedp.SendKeys(chromedp.ID("senders"), bulkSender), chromedp.SetValue(chromedp.ID("limit"), "1000"), chromedp.Click(chromedp.ID("search")))
		ja.waitJS(`!!document.querySelector("#rows")`, "the bulk sender's rows")
		name := traceName(ja)
		mt := get(name)
		if mt.Status.ReturnedRows < 500 || mt.Status.TotalMatches != bulkCount {
			t.Fatalf("the bulk trace holds %d of %d rows", mt.Status.ReturnedRows, mt.Status.TotalMatches)
		}
		start := time.Now()
		ja.visit("/ns/" + opNS + "/traces/" + name + "?per=1000")
		ja.waitJS(`document.querySelectorAll("#rows tbody tr").length > 0`, "the page of 1,000")
		n := eval[int](ja, `document.querySelectorAll("#rows tbody tr").length`)
		t.Logf("a page of %d rows loaded and laid out in %s (not asserted: the machine is shared)", n, time.Since(start).Round(time.Millisecond))
		if n != int(mt.Status.ReturnedRows) {
			t.Errorf("%d rows on the page, status holds %d", n, mt.Status.ReturnedRows)
		}
		// The last row's link by keyboard: focus it and press Enter.
		ja.run(chromedp.Focus(chromedp.CSS(`#rows tbody tr:last-child a`)), chromedp.KeyEvent("\r"))
		ja.waitJS(`!!document.querySelector("#details .timeline")`, "the last row's details")
		// Past the rows status holds: the next page, through status.continue.
		if mt.Status.Continue == "" {
			t.Fatalf("the bulk trace holds %d of %d rows and no continue token", mt.Status.ReturnedRows, mt.Status.TotalMatches)
		}
		ja.visit("/ns/" + opNS + "/traces/" + name + "?per=1000")
		ja.run(chromedp.Click(chromedp.ID("more")))
		ja.waitJS(`!!document.querySelector("#previous-rows") && (!!document.querySelector("#rows") || !!document.querySelector("#no-rows"))`, "the rows after the first trace's")
		next := get(traceName(ja))
		if next.Spec.Continue != mt.Status.Continue || int(next.Status.ReturnedRows+mt.Status.ReturnedRows) != bulkCount {
			t.Errorf("the next page: continue %q (want the first trace's), %d rows after %d (want %d in all)",
				next.Spec.Continue, next.Status.ReturnedRows, mt.Status.ReturnedRows, bulkCount)
		}
		if len(next.Status.Rows) > 0 && len(mt.Status.Rows) > 0 && !next.Status.Rows[0].Received.Before(&mt.Status.Rows[len(mt.Status.Rows)-1].Received) &&
			next.Status.Rows[0].MessageTraceID == mt.Status.Rows[len(mt.Status.Rows)-1].MessageTraceID {
			t.Errorf("the next page repeats the first page's last row")
		}
		// The status filter and the pager.
		ja.visit("/ns/" + opNS + "/traces/" + name)
		ja.waitJS(`!!document.querySelector("#next")`, "the pager")
		ja.run(chromedp.Click(chromedp.ID("next")))
		// the new document's rows, not only its address (set before the
		// page is parsed)
		ja.waitJS(`location.search.includes("page=2") && !!document.querySelector("#rows caption")`, "page 2")
		first := eval[string](ja, `document.querySelector("#rows caption").innerText`)
		if !strings.Contains(first, "101") {
			t.Errorf("page 2's caption: %q", first)
		}
	})

	t.Run("schedules: run now, suspend, resume, history", func(t *testing.T) {
		ja := ja.in(t)
		ms := &v1alpha1.MessageTraceSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: opNS, Name: "failed-weekly"},
			Spec: v1alpha1.MessageTraceScheduleSpec{Schedule: "0 7 * * 1", TimeZone: "Asia/Tokyo", Window: metav1.Duration{Duration: 7 * 24 * time.Hour},
				Template: v1alpha1.MessageTraceTemplate{Spec: v1alpha1.MessageTraceSpec{DeliveryStatuses: []v1alpha1.DeliveryStatus{"Failed"}}}}}
		if err := admin.Create(ctx, ms); err != nil {
			t.Fatal(err)
		}
		ja.visit("/ns/" + opNS + "/schedules")
		ja.waitJS(`!!document.querySelector("#schedules")`, "the schedules")
		ja.run(chromedp.Click(chromedp.CSS(`a[href$="/schedules/failed-weekly"]`)))
		ja.waitJS(`!!document.querySelector("#run-now")`, "the schedule's page")
		ja.run(chromedp.Click(chromedp.ID("run-now")))
		ja.waitJS(`!!document.querySelector("#runs") && document.querySelector("#runs").innerText.includes("完了")`, "a run in the history")
		ja.run(chromedp.Click(chromedp.ID("suspend")))
		ja.waitJS(`document.querySelector("#state").innerText.includes("一時停止中")`, "suspended")
		got := &v1alpha1.MessageTraceSchedule{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(ms), got); err != nil || !got.Spec.Suspend {
			t.Errorf("after Suspend: suspend=%v (%v)", got.Spec.Suspend, err)
		}
		ja.shot("schedule-ja")
		ja.visit("/ns/" + opNS + "/schedules")
		ja.shot("schedules-ja")
		ja.visit("/ns/" + opNS + "/schedules/failed-weekly")
		ja.run(chromedp.Click(chromedp.ID("resume")))
		ja.waitJS(`document.querySelector("#state").innerText.includes("有効")`, "resumed")
	})

	t.Run("a trace saved as a custom query, run on demand, with its history", func(t *testing.T) {
		ja := ja.in(t)
		ja.visit("/ns/" + opNS + "/traces/" + twoDay)
		ja.run(chromedp.SendKeys(chromedp.ID("queryName"), "nobody-box"), chromedp.Click(chromedp.ID("save")))
		ja.waitJS(`!!document.querySelector("#run-now")`, "the saved query's page")
		if txt := ja.text(); !strings.Contains(txt, "手動実行") {
			t.Errorf("the saved query's page does not say it runs on demand:\n%s", txt)
		}
		ja.run(chromedp.Click(chromedp.ID("run-now")))
		ja.waitJS(`!!document.querySelector("#runs") && document.querySelector("#runs").innerText.includes("完了")`, "the saved query's run in its history")
		ms := &v1alpha1.MessageTraceSchedule{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: opNS, Name: "nobody-box"}, ms); err != nil {
			t.Fatal(err)
		}
		if !ms.Spec.OnDemand() || ms.Spec.Window.Duration != 48*time.Hour || len(ms.Spec.Template.Spec.RecipientAddresses) != 1 || len(ms.Status.History) == 0 || !ms.Status.History[0].RunNow {
			t.Errorf("the saved query: %+v; history %+v", ms.Spec, ms.Status.History)
		}
	})

	t.Run("English pages", func(t *testing.T) {
		ja := ja.in(t)
		ja.language("en")
		ja.visit("/ns/" + opNS + "/")
		txt := ja.text()
		for _, want := range []string{"Default queries", "Messages sent from the primary domains in the last day", "Custom queries", "failed-weekly", "Autosaved queries", "Downloadable reports"} {
			if !strings.Contains(txt, want) {
				t.Errorf("English home lacks %q", want)
			}
		}
		ja.shot("home-en")
		ja.visit("/ns/" + opNS + "/new")
		ja.shot("new-en")
		mt := get(twoDay)
		ja.visit("/ns/" + opNS + "/traces/" + twoDay + "?id=" + mt.Status.Rows[0].MessageTraceID + "&rcpt=" + failedRcpt + "#details")
		ja.waitJS(`!!document.querySelector("#details .timeline")`, "the English details")
		if txt := ja.text(); !strings.Contains(txt, "Remote server's reply") || !strings.Contains(txt, failedReply) {
			t.Errorf("English details:\n%s", txt)
		}
		ja.shot("results-details-en")
		ja.visit("/ns/" + opNS + "/traces/" + thirtyDay)
		ja.shot("report-en")
		ja.visit("/ns/" + opNS + "/schedules")
		ja.shot("schedules-en")
		ja.visit("/ns/" + opNS + "/schedules/failed-weekly")
		ja.shot("schedule-en")
	})

	t.Run("alice, granted *@a.example, never sees another team's row", func(t *testing.T) {
		al := newTab(t, bctx, "en", "Europe/Berlin")
		al.open(startUI(t, aliceKC))
		forbidden := []string{secretSender, secretRcpt, secretSubj, otherRcpt, "p@b.example", bulkSender, "Newsletter"}
		check := func(page string, asked ...string) {
			t.Helper()
			h := al.html()
			for _, f := range forbidden {
				if strings.Contains(h, f) && !slices.Contains(asked, f) {
					t.Errorf("%s shows alice %q", page, f)
				}
			}
		}
		check("home")
		al.run(chromedp.Click(chromedp.CSS("#default-failed")))
		al.waitJS(`!!document.querySelector("#rows") || !!document.querySelector("#no-rows")`, "alice's failed query")
		if !strings.Contains(al.text(), failedRcpt) {
			t.Errorf("alice does not see her own failed message:\n%s", al.text())
		}
		check("the failed query")
		// The time zone defaults to the browser's (Europe/Berlin here), and a
		// custom range is read in it.
		al.visit("/ns/" + teamA + "/new")
		if tz := eval[string](al, `document.querySelector("#tz").value`); tz != "Europe/Berlin" {
			t.Errorf("the form's time zone is %q, not the browser's Europe/Berlin", tz)
		}
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		from := time.Now().In(berlin).Add(-8 * time.Hour).Format("2006-01-02T15:04")
		al.run(chromedp.Click(chromedp.ID("range-custom")), chromedp.SetValue(chromedp.ID("start"), from), chromedp.Click(chromedp.ID("search")))
		al.waitJS(`!!document.querySelector("#rows") || !!document.querySelector("#no-rows")`, "alice's custom range")
		custom := &v1alpha1.MessageTrace{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: teamA, Name: traceName(al)}, custom); err != nil {
			t.Fatal(err)
		}
		if want, _ := time.ParseInLocation("2006-01-02T15:04", from, berlin); custom.Spec.StartTime == nil || !custom.Spec.StartTime.Time.Equal(want) || custom.Spec.Window != nil {
			t.Errorf("a custom range from %s Europe/Berlin made startTime %v, window %v", from, custom.Spec.StartTime, custom.Spec.Window)
		}
		check("a custom range")
		al.visit("/ns/" + teamA + "/new")
		al.run(chromedp.Click(chromedp.ID("range-7")), chromedp.Click(chromedp.ID("search")))
		al.waitJS(`!!document.querySelector("#rows")`, "alice's 7-day trace of everyone")
		n := eval[int](al, `document.querySelectorAll("#rows tbody tr").length`)
		if n != 2 { // x@b.example -> info@a.example, info@a.example -> nobody@remote.example
			t.Errorf("alice's trace of everyone shows %d rows, want her 2:\n%s", n, al.text())
		}
		check("a trace of everyone")
		name := traceName(al)
		al.visit("/ns/" + teamA + "/traces/" + name + "?id=m4&rcpt=" + secretRcpt + "#details")
		al.waitJS(`!!document.querySelector("#no-events") || !!document.querySelector("#details .error") || !!document.querySelector("#details .timeline li")`, "the details of another team's message")
		check("the details of another team's message", secretRcpt) // the address she typed is echoed, nothing of the message
		if strings.Contains(al.html(), `class="ev ev-`) {
			t.Errorf("alice reads the events of another team's message:\n%s", al.text())
		}
		al.visit("/ns/" + teamA + "/")
		check("home after her traces")
		al.visit("/ns/" + teamA + "/schedules")
		check("schedules")
		for _, p := range []string{"/ns/" + opNS + "/", "/ns/" + opNS + "/traces/" + twoDay, "/ns/" + opNS + "/schedules"} {
			al.visit(p)
			if txt := al.text(); !strings.Contains(txt, "may not") {
				t.Errorf("alice opens %s:\n%s", p, txt)
			}
			check(p)
		}
	})

	t.Run("in the cluster: the console acts only with the bearer token of each request", func(t *testing.T) {
		// dave is a ServiceAccount of team A with the mailtrace roles there:
		// a token the API server accepts, as an OIDC proxy's ID token would be.
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamA, Name: "dave"}}
		if err := admin.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		user := "system:serviceaccount:" + teamA + ":dave"
		bind(t, admin, teamA, user)
		exp := int64(3600)
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}
		if err := admin.SubResource("token").Create(ctx, sa, tr); err != nil {
			t.Fatal(err)
		}
		srv, err := console.New(console.Options{Mode: console.Proxy, Namespace: teamA, Domains: []string{"a.example"},
			Config: &rest.Config{Host: cfg.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cfg.CAData}}})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sctx, stopSrv := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(sctx, ln) }()
		t.Cleanup(func() { stopSrv(); <-served })
		base := "http://" + ln.Addr().String()
		get := func(path, token string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, _ := get("/ns/"+teamA+"/", ""); code != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", code)
		}
		if code, _ := get("/ns/"+teamA+"/", "not-a-token"); code != http.StatusUnauthorized {
			t.Errorf("a token the API server refuses: %d, want 401", code)
		}
		if code, body := get("/ns/"+opNS+"/", tr.Status.Token); code != http.StatusForbidden || strings.Contains(body, secretSubj) {
			t.Errorf("dave opens the operator's namespace: %d", code)
		}
		// In a browser whose every request carries dave's token (as behind oauth2-proxy).
		dv := newTab(t, bctx, "ja", "Asia/Tokyo")
		dv.run(call(network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "ja", "Authorization": "Bearer " + tr.Status.Token}}))
		dv.base = base
		dv.visit("/")
		dv.waitJS(`!!document.querySelector("#default-failed")`, "dave's home")
		dv.run(chromedp.Click(chromedp.CSS("#default-failed")))
		dv.waitJS(`!!document.querySelector("#rows") || !!document.querySelector("#no-rows")`, "dave's failed query")
		if txt := dv.text(); !strings.Contains(txt, failedRcpt) || strings.Contains(txt, secretSubj) {
			t.Errorf("dave's failed query:\n%s", txt)
		}
		mt := &v1alpha1.MessageTrace{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: teamA, Name: traceName(dv)}, mt); err != nil {
			t.Fatal(err)
		}
		if !mt.IsAutosavedBy(user) {
			t.Errorf("the trace dave started is not his autosaved query: %v %v", mt.Labels, mt.Annotations)
		}
	})

	t.Run("carol's autosaved queries are not shown to alice", func(t *testing.T) {
		cr := newTab(t, bctx, "en", "UTC")
		cr.open(startUI(t, carolKC))
		cr.visit("/ns/" + teamA + "/new")
		cr.run(chromedp.SendKeys(chromedp.ID("subject"), "carol-only"), chromedp.Click(chromedp.ID("range-1")), chromedp.Click(chromedp.ID("search")))
		cr.waitJS(`!!document.querySelector("#phase") && document.querySelector("#phase").innerText !== ""`, "carol's trace")
		carols := traceName(cr)
		mt := &v1alpha1.MessageTrace{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: teamA, Name: carols}, mt); err != nil {
			t.Fatal(err)
		}
		if !mt.IsAutosavedBy("carol") {
			t.Errorf("carol's trace is not her autosaved query: labels %v annotations %v", mt.Labels, mt.Annotations)
		}
		cr.visit("/ns/" + teamA + "/")
		if h := cr.html(); !strings.Contains(h, carols) {
			t.Errorf("carol's home does not list her own query %s", carols)
		}
		// A forged creator is refused by the API server, whatever a client sends.
		forged := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: teamA, GenerateName: "forged-"}}
		forged.MarkAutosaved("alice")
		cc, err := client.New(carol.Config(), client.Options{Scheme: kubetest.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		if err := cc.Create(ctx, forged); err == nil {
			t.Error("carol created a trace autosaved as alice's")
		}
		al := newTab(t, bctx, "en", "UTC")
		al.open(startUI(t, aliceKC))
		h := al.html()
		if strings.Contains(h, carols) || strings.Contains(h, "carol-only") {
			t.Errorf("alice's home shows carol's autosaved query %s", carols)
		}
		if !strings.Contains(h, "/traces/failed-") {
			t.Errorf("alice's home does not list her own default query run:\n%s", al.text())
		}
	})
}

// installAdmissionPolicy installs config/admission (the API server checks
// that an autosaved query's mailtrace.io/created-by is its creator's name),
// as the operator's install does.
func installAdmissionPolicy(t *testing.T, c client.Client, root string) {
	b, err := os.ReadFile(filepath.Join(root, "config", "admission", "created-by.yaml"))
	if err != nil {
		t.Fatalf("the created-by admission policy: %v", err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
}

// installAggregatedRoles creates the ClusterRoles of config/rbac/aggregate.yaml.
func installAggregatedRoles(t *testing.T, c client.Client, root string) {
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "aggregate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var cr rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict([]byte(doc), &cr); err != nil {
			t.Fatalf("config/rbac/aggregate.yaml: %v", err)
		}
		if err := c.Create(context.Background(), &cr); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// bind gives user the mailtrace-view and mailtrace-edit ClusterRoles in ns only.
func bind(t *testing.T, c client.Client, ns, user string) {
	for _, role := range []string{"mailtrace-view", "mailtrace-edit"} {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + role},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}
		if err := c.Create(context.Background(), rb); err != nil {
			t.Fatal(err)
		}
	}
}
