package kubetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoRootHoldsGoMod(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot %s: %v", root, err)
	}
}

func TestAssetsDirSaysHowToGetTheBinaries(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", empty)
	_, err := AssetsDir()
	if err == nil || !strings.Contains(err.Error(), "hack/envtest.sh") || !strings.Contains(err.Error(), empty) {
		t.Fatalf("AssetsDir with an empty KUBEBUILDER_ASSETS: %v", err)
	}

	full := t.TempDir()
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if err := os.WriteFile(filepath.Join(full, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("KUBEBUILDER_ASSETS", full)
	if dir, err := AssetsDir(); err != nil || dir != full {
		t.Fatalf("AssetsDir = %q, %v; want %q", dir, err, full)
	}
}

func TestGetWithoutMainSkips(t *testing.T) {
	if os.Getenv("CI") != "" {
		t.Skip("under CI Get fails instead of skipping")
	}
	ran := false
	t.Run("inner", func(t *testing.T) {
		defer func() { ran = true }()
		Get(t)
		t.Error("Get returned without a control plane")
	})
	if !ran {
		t.Error("inner test did not run")
	}
}
