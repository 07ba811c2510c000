// Package tenancy tests who may trace what, through the whole operator
// (internal/cli.NewManager, tenancy on as by default) on an envtest control
// plane with its RBAC authorizer, as impersonated users: alice, whose
// namespace a TracePolicy grants `*@a.example`, and bob, whose namespace
// nothing grants. Reports go to a real MinIO (internal/testutil/miniotest).
package tenancy

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

func TestMain(m *testing.M) {
	code := kubetest.Run(m, nil)
	miniotest.Shutdown()
	os.Exit(code)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// as is a client that acts as user (impersonation, so the API server's RBAC decides).
func as(t *testing.T, env *kubetest.Env, user string) client.Client {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// installAggregatedRoles creates the ClusterRoles of config/rbac/aggregate.yaml.
func installAggregatedRoles(t *testing.T, env *kubetest.Env) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "aggregate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var cr rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict([]byte(doc), &cr); err != nil {
			t.Fatalf("config/rbac/aggregate.yaml: %v", err)
		}
		for _, l := range []string{"view", "edit", "admin"} {
			want := cr.Name == "mailtrace-view" || l != "view"
			if got := cr.Labels["rbac.authorization.k8s.io/aggregate-to-"+l] == "true"; got != want {
				t.Errorf("ClusterRole %s aggregated to %s: %v, want %v", cr.Name, l, got, want)
			}
		}
		if err := env.Client.Create(ctxT(t), &cr); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// managerConfig acts as a user holding only the manager's ClusterRole of
// config/rbac/role.yaml (generated from the controllers' markers), so the
// tests fail if the manager needs a permission it does not declare.
func managerConfig(t *testing.T, env *kubetest.Env) *rest.Config {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cr rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &cr); err != nil {
		t.Fatalf("config/rbac/role.yaml: %v", err)
	}
	const user = "mailtrace-manager-under-test"
	cr.Name = user
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}
	for _, o := range []client.Object{&cr, crb} {
		if err := env.Client.Create(ctxT(t), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}

// bind gives user the mailtrace-view and mailtrace-edit ClusterRoles in ns,
// as the built-in edit role (which they aggregate to) would.
func bind(t *testing.T, env *kubetest.Env, ns, user string) {
	for _, role := range []string{"mailtrace-view", "mailtrace-edit"} {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + role},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}
		if err := env.Client.Create(ctxT(t), rb); err != nil {
			t.Fatal(err)
		}
	}
}

// seed stores messages of a.example, b.example and c.example, received an hour ago.
func seed(t *testing.T, st store.Store, recv time.Time) {
	msg := func(id, sender string, rcpts ...string) []mailflow.Event {
		evs := []mailflow.Event{{ID: id + "-r", Time: recv, MessageTraceID: id, Type: mailflow.EventReceive, Sender: sender,
			Subject: "subject of " + id, Received: recv, Direction: mailflow.DirectionInbound, Detail: "received from " + sender}}
		for _, r := range rcpts {
			evs = append(evs, mailflow.Event{ID: id + "-d-" + r, Time: recv.Add(time.Second), MessageTraceID: id, Recipient: r,
				Type: mailflow.EventDeliver, Detail: "delivered to " + r})
		}
		return evs
	}
	var evs []mailflow.Event
	evs = append(evs, msg("m-a1", "x@a.example", "y@b.example")...)
	evs = append(evs, msg("m-b1", "p@b.example", "q@a.example", "r@b.example")...)
	evs = append(evs, msg("m-b2", "b@b.example", "c@c.example")...)
	evs = append(evs, msg("m-a2", "U@A.Example", "v@a.example")...)
	if err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// countingStore counts the queries that reach the store.
type countingStore struct {
	store.Store
	queries atomic.Int64
}

func (c *countingStore) Trace(ctx context.Context, q mailflow.Query, cur mailflow.Cursor, limit int) (mailflow.Page, error) {
	c.queries.Add(1)
	return c.Store.Trace(ctx, q, cur, limit)
}

func (c *countingStore) Count(ctx context.Context, q mailflow.Query) (mailflow.Counts, error) {
	c.queries.Add(1)
	return c.Store.Count(ctx, q)
}

// visibleToA are the (trace id, recipient) rows a `*@a.example` grant sees.
var visibleToA = []string{"m-a1 y@b.example", "m-a2 v@a.example", "m-b1 q@a.example"}

func waitFor(t *testing.T, c client.Client, key client.ObjectKey, what string, cond func(*v1alpha1.MessageTrace) bool) *v1alpha1.MessageTrace {
	t.Helper()
	mt := &v1alpha1.MessageTrace{}
	kubetest.Eventually(t, 90*time.Second, 100*time.Millisecond, func() (bool, string) {
		if err := c.Get(ctxT(t), key, mt); err != nil {
			return false, err.Error()
		}
		return cond(mt), what + "; status: " + string(mt.Status.Phase) + " " + condString(mt)
	})
	return mt
}

func condString(mt *v1alpha1.MessageTrace) string {
	var b strings.Builder
	for _, c := range mt.Status.Conditions {
		b.WriteString(c.Type + "=" + string(c.Status) + " " + c.Reason + ": " + c.Message + "; ")
	}
	return b.String()
}

func TestTenancy(t *testing.T) {
	env := kubetest.Get(t)
	endpoint, accessKey, secretKey := miniotest.Server(t)
	bucket := miniotest.Bucket(t)
	st, err := storeopen.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "mailtrace.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC().Truncate(time.Second)
	seed(t, st, now.Add(-time.Hour))

	opNS := kubetest.Namespace(t, env.Client)
	teamA := kubetest.Namespace(t, env.Client)
	teamB := kubetest.Namespace(t, env.Client)
	installAggregatedRoles(t, env)
	bind(t, env, teamA, "alice")
	bind(t, env, teamB, "bob")
	pol := &v1alpha1.TracePolicy{ObjectMeta: metav1.ObjectMeta{Name: "grant-" + teamA},
		Spec: v1alpha1.TracePolicySpec{Namespaces: []string{teamA}, Addresses: []v1alpha1.AddressPattern{"*@a.example"}}}
	if err := env.Client.Create(ctxT(t), pol); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pol) })
	// The cluster admin gives each team a ReportStore of its own.
	for _, ns := range []string{teamA, teamB} {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reports-credentials"},
			StringData: map[string]string{v1alpha1.AccessKeyIDKey: accessKey, v1alpha1.SecretAccessKeyKey: secretKey}}
		rs := &v1alpha1.ReportStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reports-" + ns},
			Spec: v1alpha1.ReportStoreSpec{Endpoint: endpoint, Bucket: bucket, Prefix: "reports", Insecure: true,
				CredentialsSecretRef: v1alpha1.SecretReference{Name: sec.Name}}}
		for _, o := range []client.Object{sec, rs} {
			if err := env.Client.Create(ctxT(t), o); err != nil {
				t.Fatal(err)
			}
		}
	}

	mgrCtx, stop := context.WithCancel(context.Background())
	counted := &countingStore{Store: st}
	mgr, err := cli.NewManager(managerConfig(t, env), counted, cli.ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		OperatorNamespace: opNS,                     // Tenancy left empty: on, as by default
		AllowDestinations: []string{"127.0.0.0/8"}}) // the admin grants the MinIO on loopback to every team
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

	alice, bob := as(t, env, "alice"), as(t, env, "bob")
	start := metav1.NewTime(now.Add(-2 * time.Hour))
	trace := func(ns, name, storeName string) *v1alpha1.MessageTrace {
		mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.MessageTraceSpec{StartTime: &start}}
		if storeName != "" {
			mt.Spec.Report = &v1alpha1.ReportSpec{StoreName: storeName, Type: v1alpha1.ReportDetailed, Always: true}
		}
		return mt
	}

	t.Run("alice sees only a.example rows in status, report and details", func(t *testing.T) {
		mt := trace(teamA, "mine", "reports-"+teamA)
		if err := alice.Create(ctxT(t), mt); err != nil {
			t.Fatalf("alice creates a MessageTrace in her namespace: %v", err)
		}
		got := waitFor(t, alice, client.ObjectKeyFromObject(mt), "the trace and its report finish",
			func(mt *v1alpha1.MessageTrace) bool {
				return meta.IsStatusConditionTrue(mt.Status.Conditions, string(v1alpha1.ConditionSucceeded)) ||
					meta.IsStatusConditionTrue(mt.Status.Conditions, string(v1alpha1.ConditionFailed))
			})
		if !meta.IsStatusConditionTrue(got.Status.Conditions, string(v1alpha1.ConditionSucceeded)) {
			t.Fatalf("trace did not succeed: %s", condString(got))
		}
		var rows []string
		for _, r := range got.Status.Rows {
			rows = append(rows, r.MessageTraceID+" "+r.Recipient)
		}
		slices.Sort(rows)
		if !slices.Equal(rows, visibleToA) || got.Status.TotalMatches != 3 || got.Status.Counts == nil {
			t.Errorf("status rows %q (total %d), want %q (3): the rows of a.example senders or recipients only", rows, got.Status.TotalMatches, visibleToA)
		}
		// The Detailed report: one line per event of the visible rows only.
		rep := got.Status.Report
		if rep == nil || rep.Key == "" {
			t.Fatalf("no report in status: %s", condString(got))
		}
		o, err := miniotest.Client(t).GetObject(ctxT(t), rep.Bucket, rep.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(o)
		o.Close()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Fatalf("report: %d records, %v", len(recs), err)
		}
		seen := map[string]int{}
		for _, rec := range recs[1:] {
			mtid, rcpt, detail := rec[7], rec[2], rec[len(rec)-1]
			seen[mtid+" "+rcpt]++
			if strings.Contains(detail, "r@b.example") || strings.Contains(detail, "c@c.example") || strings.Contains(detail, "b@b.example") {
				t.Errorf("report line of an invisible row or event: %q", rec)
			}
		}
		var keys []string
		for k, n := range seen {
			keys = append(keys, k)
			if n != 2 { // Receive, Deliver
				t.Errorf("report: %d event lines for %s, want 2", n, k)
			}
		}
		slices.Sort(keys)
		if !slices.Equal(keys, visibleToA) {
			t.Errorf("report rows %q, want %q", keys, visibleToA)
		}
		// Details through the store with the namespace's scope.
		scope := []string{"*@a.example"}
		if evs, err := st.ScopedEvents(ctxT(t), scope, "m-b1", "r@b.example"); err != nil || len(evs) != 0 {
			t.Errorf("ScopedEvents of an invisible row: %d events, %v; want none", len(evs), err)
		}
		if evs, err := st.ScopedEvents(ctxT(t), scope, "m-b1", "q@a.example"); err != nil || len(evs) != 2 {
			t.Errorf("ScopedEvents of a visible row: %d events, %v; want 2", len(evs), err)
		}
	})

	t.Run("bob, granted nothing, gets AccessDenied and nothing else", func(t *testing.T) {
		before := counted.queries.Load() // alice's trace has finished: nothing else runs
		mt := trace(teamB, "mine", "")
		if err := bob.Create(ctxT(t), mt); err != nil {
			t.Fatalf("bob creates a MessageTrace in his namespace: %v", err)
		}
		got := waitFor(t, bob, client.ObjectKeyFromObject(mt), "the trace fails AccessDenied", func(mt *v1alpha1.MessageTrace) bool {
			c := meta.FindStatusCondition(mt.Status.Conditions, string(v1alpha1.ConditionFailed))
			return c != nil && c.Status == metav1.ConditionTrue
		})
		c := meta.FindStatusCondition(got.Status.Conditions, string(v1alpha1.ConditionFailed))
		if c.Reason != string(v1alpha1.ReasonAccessDenied) || !strings.Contains(c.Message, teamB) || !strings.Contains(c.Message, "TracePolicy") {
			t.Errorf("Failed condition %s: %q; want AccessDenied naming %s and how to grant it", c.Reason, c.Message, teamB)
		}
		if got.Status.Phase != v1alpha1.PhaseFailed || len(got.Status.Rows) != 0 || got.Status.TotalMatches != 0 || got.Status.Counts != nil || got.Status.Report != nil {
			t.Errorf("an AccessDenied trace has phase %s, %d rows, total %d, counts %v, report %v; want Failed and nothing else",
				got.Status.Phase, len(got.Status.Rows), got.Status.TotalMatches, got.Status.Counts, got.Status.Report)
		}
		if n := counted.queries.Load() - before; n != 0 {
			t.Errorf("the store was queried %d times for a namespace granted nothing", n)
		}
	})

	t.Run("the operator's namespace is unrestricted", func(t *testing.T) {
		mt := trace(opNS, "all", "")
		if err := env.Client.Create(ctxT(t), mt); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, env.Client, client.ObjectKeyFromObject(mt), "the trace succeeds", func(mt *v1alpha1.MessageTrace) bool {
			return meta.IsStatusConditionTrue(mt.Status.Conditions, string(v1alpha1.ConditionSucceeded))
		})
		if got.Status.TotalMatches != 5 {
			t.Errorf("operator namespace: %d rows, want all 5", got.Status.TotalMatches)
		}
	})

	t.Run("another namespace's ReportStore is refused", func(t *testing.T) {
		err := alice.Create(ctxT(t), trace(teamA, "theirs-by-path", teamB+"/reports-"+teamB))
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "own namespace") {
			t.Errorf("a storeName of namespace/name: %v; want Invalid saying a ReportStore of its own namespace", err)
		}
		mt := trace(teamA, "theirs-by-name", "reports-"+teamB) // exists in team-b only
		if err := alice.Create(ctxT(t), mt); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, alice, client.ObjectKeyFromObject(mt), "the trace is refused the other namespace's store", func(mt *v1alpha1.MessageTrace) bool {
			c := meta.FindStatusCondition(mt.Status.Conditions, string(v1alpha1.ConditionSucceeded))
			return c != nil && c.Reason == string(v1alpha1.ReasonReportStoreNotFound)
		})
		c := meta.FindStatusCondition(got.Status.Conditions, string(v1alpha1.ConditionSucceeded))
		if !strings.Contains(c.Message, teamA+"/reports-"+teamB) || !strings.Contains(c.Message, "own namespace") {
			t.Errorf("condition message %q: want it to name %s/reports-%s and say only its own namespace's ReportStores are used", c.Message, teamA, teamB)
		}
		if got.Status.Report != nil && got.Status.Report.Key != "" {
			t.Errorf("a report was started in another namespace's store: %+v", got.Status.Report)
		}
	})

	t.Run("RBAC: alice edits traces in her namespace only and cannot read TracePolicies", func(t *testing.T) {
		var pols v1alpha1.TracePolicyList
		if err := alice.List(ctxT(t), &pols); !apierrors.IsForbidden(err) {
			t.Errorf("alice lists TracePolicies: %v, want Forbidden", err)
		}
		if err := alice.Get(ctxT(t), client.ObjectKeyFromObject(pol), &v1alpha1.TracePolicy{}); !apierrors.IsForbidden(err) {
			t.Errorf("alice reads a TracePolicy: %v, want Forbidden", err)
		}
		p := &v1alpha1.TracePolicy{ObjectMeta: metav1.ObjectMeta{Name: "self-grant"},
			Spec: v1alpha1.TracePolicySpec{Namespaces: []string{teamA}, Addresses: []v1alpha1.AddressPattern{"*"}}}
		if err := alice.Create(ctxT(t), p); !apierrors.IsForbidden(err) {
			t.Errorf("alice grants herself everything: %v, want Forbidden", err)
		}
		if err := alice.Create(ctxT(t), trace(teamB, "intruder", "")); !apierrors.IsForbidden(err) {
			t.Errorf("alice creates a MessageTrace in bob's namespace: %v, want Forbidden", err)
		}
		var l v1alpha1.MessageTraceList
		if err := alice.List(ctxT(t), &l, client.InNamespace(teamB)); !apierrors.IsForbidden(err) {
			t.Errorf("alice lists bob's MessageTraces: %v, want Forbidden", err)
		}
		if err := alice.List(ctxT(t), &l, client.InNamespace(teamA)); err != nil {
			t.Errorf("alice lists her MessageTraces: %v", err)
		}
		if err := alice.Get(ctxT(t), client.ObjectKey{Namespace: teamA, Name: "reports-credentials"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
			t.Errorf("alice reads the credentials Secret: %v, want Forbidden (mailtrace's roles grant no Secrets)", err)
		}
	})
}
