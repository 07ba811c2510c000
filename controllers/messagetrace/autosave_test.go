package messagetrace

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestAutosavedToPrune(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	tr := func(name, user string, autosave bool, at time.Duration) v1alpha1.MessageTrace {
		mt := v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(at))}}
		if user != "" {
			mt.Annotations = map[string]string{v1alpha1.AnnotationCreatedBy: user}
		}
		if autosave {
			mt.Labels = map[string]string{v1alpha1.LabelAutosave: "true"}
		}
		return mt
	}
	deleting := tr("alice-gone", "alice", true, -time.Hour)
	deleting.DeletionTimestamp = &t0
	traces := []v1alpha1.MessageTrace{
		tr("alice-3", "alice", true, 3*time.Minute),
		tr("alice-1", "alice", true, time.Minute),
		tr("bob-0", "bob", true, 0),
		tr("alice-2b", "alice", true, 2*time.Minute),
		tr("alice-2a", "alice", true, 2*time.Minute),   // same second: by name
		tr("alice-kept", "alice", false, -2*time.Hour), // not autosaved: never pruned
		tr("nobody", "", true, -3*time.Hour),           // no creator: never pruned
		deleting,
	}
	names := func(mts []*v1alpha1.MessageTrace) []string {
		var out []string
		for _, mt := range mts {
			out = append(out, mt.Name)
		}
		return out
	}
	for _, tc := range []struct {
		user string
		keep int
		want []string
	}{
		{"alice", 10, nil},
		{"alice", 4, nil},
		{"alice", 3, []string{"alice-1"}},
		{"alice", 2, []string{"alice-1", "alice-2a"}},
		{"alice", 0, []string{"alice-1", "alice-2a", "alice-2b", "alice-3"}},
		{"bob", 0, []string{"bob-0"}},
		{"bob", 1, nil},
		{"carol", 0, nil},
		{"", 0, nil},
	} {
		if got := names(AutosavedToPrune(traces, tc.user, tc.keep)); !slices.Equal(got, tc.want) {
			t.Errorf("AutosavedToPrune(%s, keep %d) = %q, want %q", tc.user, tc.keep, got, tc.want)
		}
	}
}

// TestAutosaveKeepsEachUsersNewest creates a dozen autosaved queries of one
// user, two of another and one trace that is not autosaved: the manager
// deletes the first user's oldest beyond 10 and nothing else.
func TestAutosaveKeepsEachUsersNewest(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	st := openSQLite(t)
	startManager(t, env, ns, st, nil, Options{})

	mk := func(name, user string) {
		mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if user != "" {
			mt.MarkAutosaved(user)
		}
		if err := env.Client.Create(testCtx(t), mt); err != nil {
			t.Fatal(err)
		}
	}
	mk("bob-00", "bob")
	mk("mine", "")
	for i := range 12 {
		mk(fmt.Sprintf("alice-%02d", i), "alice")
	}
	mk("bob-01", "bob")
	want := []string{"alice-02", "alice-03", "alice-04", "alice-05", "alice-06", "alice-07", "alice-08", "alice-09", "alice-10", "alice-11", "bob-00", "bob-01", "mine"}
	kubetest.Eventually(t, waitFor, 100*time.Millisecond, func() (bool, string) {
		var list v1alpha1.MessageTraceList
		if err := env.Client.List(testCtx(t), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var got []string
		for _, mt := range list.Items {
			if mt.DeletionTimestamp == nil {
				got = append(got, mt.Name)
			}
		}
		slices.Sort(got)
		return slices.Equal(got, want), fmt.Sprintf("traces %q, want %q", got, want)
	})
}
