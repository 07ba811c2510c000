package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPluginLinksOnlyAClient: the kubectl plugin links the API types and a
// client, never a store adapter, a migration tool, envtest or a controller.
func TestPluginLinksOnlyAClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"modernc.org/sqlite", "github.com/jackc/pgx", "sigs.k8s.io/controller-runtime/pkg/envtest", "github.com/pressly/goose", "github.com/mailtrace/mailtrace/controllers"} {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("kubectl-mailtrace links %s", pkg)
			}
		}
	}
}
