package plugin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// TestUIServesOnLoopbackOnly: the console acts with the user's credentials,
// so `ui` refuses an address other machines could reach.
func TestUIServesOnLoopbackOnly(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: team-a}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:8080", ":8080", "example.com:80"} {
		var out bytes.Buffer
		cmd := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
		cmd.SetArgs([]string{"--kubeconfig", kc, "ui", "--no-browser", "--address", addr})
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--address %s: %v, want a refusal naming loopback", addr, err)
		}
		if strings.Contains(out.String(), "token=") {
			t.Errorf("--address %s printed a URL: %s", addr, out.String())
		}
	}
}
