package democmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/demo"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

// needed skips (or, under CI, fails) when a component cannot be started.
func needed(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// The whole demo, end to end, on a real control plane and a real MinIO,
// with the mail logs sent over the ingester's HTTP listener: every sample
// trace, the 30-day report trace and the schedule's run succeed, the
// printed answer has rows, a timeline and the report object in the bucket;
// while it runs (--wait), a client built from the printed kubeconfig lists
// the MessageTraces, as `kubectl --kubeconfig <path> get mt` does.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and MinIO")
	}
	assets := demo.DefaultAssets()
	needed(t, demo.CheckAssets(assets))
	minioBin, err := miniotest.Binary()
	needed(t, err)

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var listed []v1alpha1.MessageTrace
	var listErr error
	o := Options{Assets: assets, MinIO: minioBin, Dir: dir, Timeout: 2 * time.Minute, Wait: true,
		Started: func(kubeconfig string) {
			defer cancel() // ends the --wait
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				listErr = err
				return
			}
			c, err := client.New(cfg, client.Options{Scheme: cli.NewScheme()})
			if err != nil {
				listErr = err
				return
			}
			var list v1alpha1.MessageTraceList
			listErr = c.List(context.Background(), &list, client.InNamespace("default"))
			listed = list.Items
		}}
	var out, errOut bytes.Buffer
	err = Run(ctx, o, &out, &errOut)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	s := out.String()
	t.Log(s)
	if listErr != nil {
		t.Fatalf("listing MessageTraces with the printed kubeconfig: %v", listErr)
	}
	mts, _, err := demo.SampleTraces()
	if err != nil {
		t.Fatal(err)
	}
	want := len(mts) + 3 // the samples, the report trace, the schedule's run, the details trace
	if len(listed) != want {
		t.Errorf("the printed kubeconfig lists %d MessageTraces, want %d", len(listed), want)
	}
	for _, name := range append(names(mts), demoReportTrace, demoSchedule+"-") {
		if !strings.Contains(s, "\n"+name) {
			t.Errorf("no line for %s in:\n%s", name, s)
		}
	}
	for _, want := range []string{"NAME", "PHASE", "RANGE", "MATCHES", "SHOWN", "AGE", "Succeeded",
		"RECEIVED (UTC)", "Failed", "5.1.1", "Fail", "export KUBECONFIG=" + filepath.Join(dir, "kubeconfig"),
		"100% stored", "newest-failure-details", "Receive", "phase Completed", "mailtrace/default/" + demoReportTrace, "messagetrace.csv.gz",
		"$ kubectl get mts", "0 6 * * 1", "stopping control plane", "stopping MinIO"} {
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

func names(mts []v1alpha1.MessageTrace) []string {
	var out []string
	for _, mt := range mts {
		out = append(out, mt.Name+" ")
	}
	return out
}
