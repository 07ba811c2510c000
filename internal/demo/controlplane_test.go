package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
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
