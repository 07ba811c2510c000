package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/demo"
)

// The whole demo, end to end, on a real control plane: every sample trace
// succeeds and the printed answer has rows and a timeline.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	assets := demo.DefaultAssets()
	if err := demo.CheckAssets(assets); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := RunDemo(ctx, DemoOptions{Assets: assets, Dir: dir, Timeout: 2 * time.Minute}, &out, &errOut)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	s := out.String()
	mts, _, err := demo.SampleTraces()
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mts {
		if !strings.Contains(s, "\n"+mt.Name+" ") {
			t.Errorf("no line for %s in:\n%s", mt.Name, s)
		}
	}
	for _, want := range []string{"NAME", "PHASE", "RANGE", "MATCHES", "SHOWN", "AGE", "Succeeded",
		"RECEIVED (UTC)", "Failed", "5.1.1", "Fail", "export KUBECONFIG=" + filepath.Join(dir, "kubeconfig"),
		"stopping control plane"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, " Running ") || strings.Contains(s, " Pending  ") {
		t.Errorf("a trace did not finish:\n%s", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); err != nil {
		t.Error(err)
	}
}
