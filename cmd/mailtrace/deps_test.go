package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOperatorDoesNotLinkEnvtest: the operator's binary (built without the
// demo tag, as the image is) does not link envtest; with the tag it does,
// so the check sees what it checks.
func TestOperatorDoesNotLinkEnvtest(t *testing.T) {
	for _, tc := range []struct {
		tags string
		want bool
	}{{"", false}, {"demo", true}} {
		out, err := exec.Command("go", "list", "-tags", tc.tags, "-deps", ".").Output()
		if err != nil {
			t.Fatalf("go list -deps: %v", err)
		}
		if got := strings.Contains(string(out), "sigs.k8s.io/controller-runtime/pkg/envtest"); got != tc.want {
			t.Errorf("tags %q: links envtest %v, want %v", tc.tags, got, tc.want)
		}
	}
}
