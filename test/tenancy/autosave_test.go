package tenancy

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/config/admission"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/plugin"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

// installCreatedByPolicy creates the ValidatingAdmissionPolicy and its
// binding of config/admission/created-by.yaml, as the operator's install does.
func installCreatedByPolicy(t *testing.T, env *kubetest.Env) {
	pol, bind, err := admission.CreatedBy()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{pol, bind} {
		if err := env.Client.Create(ctxT(t), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), bind)
		_ = env.Client.Delete(context.Background(), pol)
	})
}

// TestAutosavedQueriesAreEachUsersOwn: alice and carol share a namespace,
// bob has his own. The API server refuses a trace claiming another user as
// its creator, a label without the claim, and any later change of either;
// the manager keeps each user's newest 10 autosaved queries and never
// deletes another's; the plugin's WhoAmI is the name the policy checks.
func TestAutosavedQueriesAreEachUsersOwn(t *testing.T) {
	env := kubetest.Get(t)
	st, err := storeopen.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "mailtrace.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	teamA := kubetest.Namespace(t, env.Client)
	teamB := kubetest.Namespace(t, env.Client)
	installAggregatedRoles(t, env)
	bind(t, env, teamA, "alice")
	bind(t, env, teamA, "carol")
	bind(t, env, teamB, "bob")
	installCreatedByPolicy(t, env)
	alice, carol, bob := as(t, env, "alice"), as(t, env, "carol"), as(t, env, "bob")

	trace := func(ns, name, createdBy string, autosave bool) *v1alpha1.MessageTrace {
		mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if createdBy != "" {
			mt.Annotations = map[string]string{v1alpha1.AnnotationCreatedBy: createdBy}
		}
		if autosave {
			mt.Labels = map[string]string{v1alpha1.LabelAutosave: "true"}
		}
		return mt
	}

	// The policy takes effect once the API server has loaded it.
	kubetest.Eventually(t, 60*time.Second, 200*time.Millisecond, func() (bool, string) {
		err := carol.Create(ctxT(t), trace(teamA, "forged-probe", "alice", true))
		if err == nil {
			_ = env.Client.Delete(ctxT(t), trace(teamA, "forged-probe", "", false))
			return false, "carol created a trace as alice: the policy is not in force yet"
		}
		return strings.Contains(err.Error(), "must be your own user name, carol, not alice"), err.Error()
	})

	t.Run("the creator cannot be forged", func(t *testing.T) {
		for _, user := range []string{"alice", "carol"} {
			c := as(t, env, user)
			me, err := plugin.WhoAmI(ctxT(t), c)
			if err != nil || me != user {
				t.Fatalf("WhoAmI as %s: %q, %v", user, me, err)
			}
		}
		if err := carol.Create(ctxT(t), trace(teamA, "carol-0", "carol", true)); err != nil {
			t.Fatalf("carol creates her own autosaved query: %v", err)
		}
		if err := carol.Create(ctxT(t), trace(teamA, "carol-plain", "", false)); err != nil {
			t.Fatalf("carol creates a trace that is not autosaved: %v", err)
		}
		err := carol.Create(ctxT(t), trace(teamA, "no-claim", "", true))
		if err == nil || !strings.Contains(err.Error(), "needs the annotation mailtrace.io/created-by") {
			t.Errorf("an autosave label without the annotation: %v", err)
		}
		// alice may not take carol's trace, nor make carol's plain trace count as carol's autosaved one.
		for _, patch := range []string{
			`{"metadata":{"annotations":{"mailtrace.io/created-by":"alice"}}}`,
			`{"metadata":{"annotations":{"mailtrace.io/created-by":null}}}`,
			`{"metadata":{"labels":{"mailtrace.io/autosave":null}}}`,
		} {
			err := alice.Patch(ctxT(t), trace(teamA, "carol-0", "", false), client.RawPatch("application/merge-patch+json", []byte(patch)))
			if err == nil || !strings.Contains(err.Error(), "cannot be changed") {
				t.Errorf("alice patches carol-0 with %s: %v", patch, err)
			}
		}
		err = alice.Patch(ctxT(t), trace(teamA, "carol-plain", "", false),
			client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"mailtrace.io/autosave":"true"},"annotations":{"mailtrace.io/created-by":"carol"}}}`)))
		if err == nil || !strings.Contains(err.Error(), "cannot be changed") {
			t.Errorf("alice makes carol's plain trace an autosaved query of carol's: %v", err)
		}
		// An unrelated change (as the manager's finalizer patches) is let through.
		if err := alice.Patch(ctxT(t), trace(teamA, "carol-0", "", false),
			client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"note":"x"}}}`))); err != nil {
			t.Errorf("an unrelated label on an autosaved query: %v", err)
		}
	})

	mgrCtx, stop := context.WithCancel(context.Background())
	mgr, err := cli.NewManager(managerConfig(t, env), st, cli.ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		Tenancy: cli.TenancyDisabled})
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

	t.Run("each user's newest 10 are kept, never another's", func(t *testing.T) {
		if err := carol.Create(ctxT(t), trace(teamA, "carol-1", "carol", true)); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := bob.Create(ctxT(t), trace(teamB, fmt.Sprintf("bob-%d", i), "bob", true)); err != nil {
				t.Fatal(err)
			}
		}
		var want []string
		for i := range 12 {
			name := fmt.Sprintf("alice-%02d", i)
			if err := alice.Create(ctxT(t), trace(teamA, name, "alice", true)); err != nil {
				t.Fatalf("alice's autosaved query %d: %v", i, err)
			}
			if i >= 2 {
				want = append(want, name)
			}
		}
		want = append(want, "carol-0", "carol-1", "carol-plain")
		slices.Sort(want)
		kubetest.Eventually(t, 90*time.Second, 200*time.Millisecond, func() (bool, string) {
			got := names(t, alice, teamA)
			return slices.Equal(got, want), fmt.Sprintf("%s holds %q, want %q", teamA, got, want)
		})
		if got := names(t, bob, teamB); !slices.Equal(got, []string{"bob-0", "bob-1", "bob-2"}) {
			t.Errorf("bob's namespace holds %q", got)
		}
		// What alice's last queries are (the console and list --mine): hers only.
		var l v1alpha1.MessageTraceList
		if err := alice.List(ctxT(t), &l, client.InNamespace(teamA), client.MatchingLabels{v1alpha1.LabelAutosave: "true"}); err != nil {
			t.Fatal(err)
		}
		mine := plugin.MyAutosaved(l.Items, "alice")
		if len(mine) != 10 || mine[0].Name != "alice-11" || mine[9].Name != "alice-02" {
			t.Errorf("alice's autosaved queries: %d, first %s", len(mine), mine[0].Name)
		}
		if err := alice.List(ctxT(t), &l, client.InNamespace(teamB)); !apierrors.IsForbidden(err) {
			t.Errorf("alice lists bob's autosaved queries: %v, want Forbidden", err)
		}
		if err := alice.Delete(ctxT(t), trace(teamB, "bob-0", "", false)); !apierrors.IsForbidden(err) {
			t.Errorf("alice deletes bob's autosaved query: %v, want Forbidden", err)
		}
	})
}

func names(t *testing.T, c client.Client, ns string) []string {
	var l v1alpha1.MessageTraceList
	if err := c.List(ctxT(t), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mt := range l.Items {
		if mt.DeletionTimestamp == nil {
			out = append(out, mt.Name)
		}
	}
	slices.Sort(out)
	return out
}
