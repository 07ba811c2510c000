package tenancy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/smtptest"
)

// internalService stands in for an internal admin API on loopback: it
// counts every connection, answers /hook with 204 and anything else with a
// 500 whose body holds a secret (which must never reach a status).
func internalService(t *testing.T, host string) (port string, conns *atomic.Int64) {
	t.Helper()
	conns = &atomic.Int64{}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hook" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, "INTERNAL-ONLY-DATA: db_password=hunter2", http.StatusInternalServerError)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, conns
}

// banner is an open port that speaks another protocol (as sshd would).
func banner(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// closedPort is a loopback port nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestTenantCannotReachInternalDestinations: a tenant with edit in its own
// namespace writes webhook URLs, ReportStore endpoints and email recipients
// that point inside the cluster. Nothing reaches the internal service, no
// answer of it reaches status, open and closed ports look the same, and
// email goes only to granted recipients. A cluster admin's grant (a
// TracePolicy's destinations) opens exactly what it names.
func TestTenantCannotReachInternalDestinations(t *testing.T) {
	env := kubetest.Get(t)
	st, err := storeopen.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "mailtrace.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC().Truncate(time.Second)
	seed(t, st, now.Add(-time.Hour))

	svcPort, svcConns := internalService(t, "127.0.0.1")
	svc := "127.0.0.1:" + svcPort
	// A redirector on 127.0.0.2, which the tenant is granted, sending
	// every request on to the internal service.
	var redirects atomic.Int64
	redirector := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, "http://"+svc+"/admin/reset", http.StatusTemporaryRedirect)
	}))
	rl, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	redirector.Listener.Close()
	redirector.Listener = rl
	redirector.Start()
	t.Cleanup(redirector.Close)
	relay := smtptest.Start(t)

	opNS := kubetest.Namespace(t, env.Client)
	tenant := kubetest.Namespace(t, env.Client)  // granted no destinations but 127.0.0.2
	granted := kubetest.Namespace(t, env.Client) // granted the internal service
	installAggregatedRoles(t, env)
	bind(t, env, tenant, "mallory")
	bind(t, env, granted, "grace")
	policies := []*v1alpha1.TracePolicy{
		{ObjectMeta: metav1.ObjectMeta{Name: "egress-" + tenant}, Spec: v1alpha1.TracePolicySpec{
			Namespaces: []string{tenant}, Addresses: []v1alpha1.AddressPattern{"*@a.example"},
			Destinations: []v1alpha1.Destination{"127.0.0.2"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "egress-" + granted}, Spec: v1alpha1.TracePolicySpec{
			Namespaces: []string{granted}, Addresses: []v1alpha1.AddressPattern{"*@a.example"},
			Destinations: []v1alpha1.Destination{"127.0.0.1"}}},
	}
	for _, p := range policies {
		if err := env.Client.Create(ctxT(t), p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	}

	mgrCtx, stop := context.WithCancel(context.Background())
	mgr, err := cli.NewManager(managerConfig(t, env), st, cli.ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		OperatorNamespace: opNS,
		Notify:            cli.NotifyOptions{SMTPRelay: relay.Addr, SMTPFrom: "mailtrace@operator.example"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	mallory, grace := as(t, env, "mallory"), as(t, env, "grace")
	start := metav1.NewTime(now.Add(-2 * time.Hour))

	notified := func(c client.Client, ns, name string, notify *v1alpha1.NotifySpec, done func(*v1alpha1.NotificationsStatus) bool) *v1alpha1.MessageTrace {
		t.Helper()
		mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.MessageTraceSpec{StartTime: &start, Notify: notify}}
		if err := c.Create(ctxT(t), mt); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return waitFor(t, c, client.ObjectKeyFromObject(mt), name+": notification settled", func(mt *v1alpha1.MessageTrace) bool {
			return mt.Status.Notifications != nil && done(mt.Status.Notifications)
		})
	}
	webhook := func(url string) *v1alpha1.NotifySpec {
		return &v1alpha1.NotifySpec{Webhook: &v1alpha1.WebhookNotification{URL: url}}
	}
	gaveUp := func(n *v1alpha1.NotificationsStatus) bool {
		return n.Webhook != nil && (n.Webhook.GaveUp || n.Webhook.Delivered)
	}
	var traces []*v1alpha1.MessageTrace

	t.Run("webhooks to internal addresses are refused before connecting", func(t *testing.T) {
		for i, url := range []string{
			"http://" + svc + "/admin/reset",                  // loopback
			"http://169.254.169.254/latest/meta-data/iam/",    // cloud metadata
			"http://localhost:" + svcPort + "/admin/reset",    // a name that resolves to loopback
			"http://[::ffff:127.0.0.1]:" + svcPort + "/admin", // IPv4-mapped IPv6
			"http://" + rl.Addr().String() + "/go",            // granted, but redirects to loopback
		} {
			mt := notified(mallory, tenant, fmt.Sprintf("hook-%d", i), webhook(url), gaveUp)
			traces = append(traces, mt)
			w := mt.Status.Notifications.Webhook
			if w.Delivered || !w.GaveUp || w.Reason != v1alpha1.ReasonDestinationNotAllowed || w.Attempts != 1 ||
				!strings.Contains(w.LastError, "not allowed") {
				t.Errorf("%s: %+v, want given up at once with DestinationNotAllowed", url, w)
			}
		}
		if n := svcConns.Load(); n != 0 {
			t.Fatalf("the internal service saw %d connections from the manager, want 0", n)
		}
		if redirects.Load() == 0 {
			t.Error("the granted redirector was never asked: the redirect case proved nothing")
		}
	})

	t.Run("with an admin's grant the same service is reached, and only its status code is told", func(t *testing.T) {
		ok := notified(grace, granted, "hook-ok", webhook("http://"+svc+"/hook"), gaveUp)
		if w := ok.Status.Notifications.Webhook; !w.Delivered {
			t.Errorf("granted webhook: %+v, want delivered", w)
		}
		bad := notified(grace, granted, "hook-500", &v1alpha1.NotifySpec{Webhook: &v1alpha1.WebhookNotification{URL: "http://" + svc + "/admin/reset"}},
			func(n *v1alpha1.NotificationsStatus) bool { return n.Webhook != nil && n.Webhook.Attempts >= 1 })
		traces = append(traces, ok, bad)
		w := bad.Status.Notifications.Webhook
		if w.Reason != v1alpha1.ReasonWebhookRejected || w.LastError != "webhook answered HTTP 500 (Internal Server Error)" {
			t.Errorf("a 500 answer: %+v", w)
		}
		if svcConns.Load() == 0 {
			t.Error("the granted service saw no connection")
		}
	})

	t.Run("ReportStore endpoints: open and closed ports look the same", func(t *testing.T) {
		sec := func(ns string) {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
				StringData: map[string]string{v1alpha1.AccessKeyIDKey: "AK", v1alpha1.SecretAccessKeyKey: "very-secret-key"}}
			if err := env.Client.Create(ctxT(t), s); err != nil {
				t.Fatal(err)
			}
		}
		sec(tenant)
		sec(granted)
		available := func(c client.Client, ns, name, endpoint string) *metav1.Condition {
			rs := &v1alpha1.ReportStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: v1alpha1.ReportStoreSpec{Endpoint: endpoint, Bucket: "reports", Insecure: true,
					CredentialsSecretRef: v1alpha1.SecretReference{Name: "creds"}}}
			if err := c.Create(ctxT(t), rs); err != nil {
				t.Fatalf("create ReportStore %s: %v", name, err)
			}
			var cond *metav1.Condition
			kubetest.Eventually(t, 90*time.Second, 100*time.Millisecond, func() (bool, string) {
				if err := c.Get(ctxT(t), client.ObjectKeyFromObject(rs), rs); err != nil {
					return false, err.Error()
				}
				cond = meta.FindStatusCondition(rs.Status.Conditions, string(v1alpha1.ConditionAvailable))
				return cond != nil, "the ReportStore was checked"
			})
			return cond
		}
		open, closed := banner(t), closedPort(t)
		for _, tc := range []struct {
			c      client.Client
			ns     string
			reason v1alpha1.Reason
		}{
			{mallory, tenant, v1alpha1.ReasonDestinationNotAllowed},
			{grace, granted, v1alpha1.ReasonStoreUnreachable},
		} {
			a := available(tc.c, tc.ns, "open", open)
			b := available(tc.c, tc.ns, "closed", closed)
			if a.Reason != string(tc.reason) || b.Reason != string(tc.reason) {
				t.Errorf("%s: open port %s, closed port %s, want both %s", tc.ns, a.Reason, b.Reason, tc.reason)
			}
			if strings.Contains(a.Message, "refused") || strings.Contains(b.Message, "refused") ||
				strings.Contains(a.Message, "SSH") || strings.Contains(a.Message, "very-secret") {
				t.Errorf("%s: the messages tell too much: %q / %q", tc.ns, a.Message, b.Message)
			}
			_, po, _ := net.SplitHostPort(open)
			_, pc, _ := net.SplitHostPort(closed)
			if strings.ReplaceAll(a.Message, po, "PORT") != strings.ReplaceAll(b.Message, pc, "PORT") {
				t.Errorf("%s: open and closed ports are told apart:\n  open:   %s\n  closed: %s", tc.ns, a.Message, b.Message)
			}
		}
	})

	t.Run("email goes only to granted recipients, from the operator's address", func(t *testing.T) {
		out := notified(mallory, tenant, "mail-out", &v1alpha1.NotifySpec{Email: &v1alpha1.EmailNotification{
			To: []v1alpha1.EmailAddress{"ceo@a.example", "victim@elsewhere.example"}}},
			func(n *v1alpha1.NotificationsStatus) bool {
				return n.Email != nil && (n.Email.GaveUp || n.Email.Delivered)
			})
		in := notified(mallory, tenant, "mail-in", &v1alpha1.NotifySpec{Email: &v1alpha1.EmailNotification{
			To: []v1alpha1.EmailAddress{"ops@a.example"}}},
			func(n *v1alpha1.NotificationsStatus) bool {
				return n.Email != nil && (n.Email.GaveUp || n.Email.Delivered)
			})
		traces = append(traces, out, in)
		if e := out.Status.Notifications.Email; !e.GaveUp || e.Reason != v1alpha1.ReasonRecipientNotAllowed ||
			!strings.Contains(e.LastError, "victim@elsewhere.example") {
			t.Errorf("email outside the grants: %+v, want RecipientNotAllowed", e)
		}
		if e := in.Status.Notifications.Email; !e.Delivered {
			t.Errorf("email to a granted recipient: %+v, want delivered", e)
		}
		msgs := relay.Wait(1, 10*time.Second)
		if len(msgs) != 1 || msgs[0].From != "mailtrace@operator.example" || len(msgs[0].To) != 1 || msgs[0].To[0] != "ops@a.example" {
			t.Errorf("the relay got %+v, want one message from the operator to ops@a.example", msgs)
		}
	})

	// Nothing the internal service wrote is in any status.
	for _, mt := range traces {
		got := &v1alpha1.MessageTrace{}
		if err := mallory.Get(ctxT(t), client.ObjectKeyFromObject(mt), got); err != nil {
			if err := grace.Get(ctxT(t), client.ObjectKeyFromObject(mt), got); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := json.Marshal(got.Status)
		if s := string(b); strings.Contains(s, "hunter2") || strings.Contains(s, "INTERNAL-ONLY") {
			t.Errorf("%s: the service's answer reached status: %s", mt.Name, s)
		}
	}
}
