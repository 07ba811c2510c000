package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/internal/cli"
)

// The binary embeds a copy of config/crd/bases; it must not drift.
func TestEmbeddedCRDsMatchConfig(t *testing.T) {
	want, err := filepath.Glob("../../config/crd/bases/*.yaml")
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	got, _ := crdFS.ReadDir("crds")
	if len(got) != len(want) {
		t.Fatalf("internal/demo/crds holds %d files, config/crd/bases %d: run cp config/crd/bases/*.yaml internal/demo/crds/", len(got), len(want))
	}
	for _, p := range want {
		a, _ := os.ReadFile(p)
		b, err := crdFS.ReadFile("crds/" + filepath.Base(p))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("internal/demo/crds/%s differs from %s: run cp config/crd/bases/*.yaml internal/demo/crds/", filepath.Base(p), p)
		}
	}
}

func TestSampleTraces(t *testing.T) {
	mts, files, err := SampleTraces()
	if err != nil {
		t.Fatal(err)
	}
	if len(mts) < 6 {
		t.Fatalf("%d sample MessageTraces, want the first example and the five default queries", len(mts))
	}
	names := map[string]bool{}
	for i, mt := range mts {
		if mt.Name == "" || names[mt.Name] {
			t.Errorf("%s: empty or duplicate name %q", files[i], mt.Name)
		}
		names[mt.Name] = true
	}
	for _, n := range []string{"failed-last-7-days", "sent-last-day", "undelivered-to-partner"} {
		if !names[n] {
			t.Errorf("no sample named %s", n)
		}
	}
}

// TestControlPlaneRefusesAForgedCreator: the demo's cluster carries the
// operator's admission policy (config/admission), so a MessageTrace
// claiming another user as its creator is refused there as on a real
// install.
func TestControlPlaneRefusesAForgedCreator(t *testing.T) {
	assets := DefaultAssets()
	if err := CheckAssets(assets); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cp, err := StartControlPlane(assets, t.TempDir(), cli.NewScheme())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	c, err := client.New(cp.Config, client.Options{Scheme: cli.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	mts, _, err := SampleTraces()
	if err != nil {
		t.Fatal(err)
	}
	// The policy takes effect once the API server has loaded it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; ; i++ {
		mt := mts[0].DeepCopy()
		mt.Namespace = "default"
		mt.Name = fmt.Sprintf("forged-%d", i)
		mt.Annotations = map[string]string{"mailtrace.io/created-by": "mallory"}
		err := c.Create(ctx, mt)
		if err != nil && strings.Contains(err.Error(), "must be your own user name") {
			return
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("create with a forged creator: %v, want the policy's refusal", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("a MessageTrace claiming mallory as its creator was still accepted a minute after the control plane started")
		case <-time.After(200 * time.Millisecond):
		}
	}
}
