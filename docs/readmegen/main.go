// Command readmegen writes README's recorded outputs from a real demo run:
// the demo's own output (as `make demo` prints it), and what an admin sees
// in the demo cluster and store (`kubectl get mt -o wide`, a trace's
// status, `mailtrace query -o csv`, `mailtrace details -o json`). Run it
// from the repository root after `make build`, with the binaries `make demo`
// uses:
//
//	go run ./docs/readmegen -assets "$(hack/envtest.sh)" -minio "$(hack/minio.sh)"
//
// Paths are written relative to the checkout. docs/readme_test.go checks
// the blocks' structure against the code on every `go test`.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/docs"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/demo"
	"github.com/mailtrace/mailtrace/internal/democmd"
	"github.com/mailtrace/mailtrace/internal/plugin"
)

// The trace whose status "A first MessageTrace" shows, and the showcase
// whose first failed row the store examples use (as the demo does).
const (
	firstTrace = "undelivered-to-partner"
	showcase   = "failed-last-7-days"
	namespace  = "default"
)

func main() {
	assets := flag.String("assets", demo.DefaultAssets(), "directory with kube-apiserver and etcd (hack/envtest.sh prints it)")
	minio := flag.String("minio", demo.DefaultMinIO(), "MinIO server binary (hack/minio.sh prints it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *assets, *minio); err != nil {
		fmt.Fprintln(os.Stderr, "readmegen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, assets, minio string) error {
	readme, err := os.ReadFile(docs.ReadmeFile)
	if err != nil {
		return fmt.Errorf("%w (run readmegen from the repository root)", err)
	}
	blocks := map[string]string{}
	var extraErr error
	o := democmd.Options{Assets: rel(assets), MinIO: rel(minio), Dir: ".demo", Timeout: 5 * time.Minute,
		Started: func(kubeconfig string) { extraErr = extras(ctx, kubeconfig, blocks) }}
	// The demo prints how to run the binary again: as `make demo` runs it.
	os.Args[0] = "bin/mailtrace"
	var out, errOut bytes.Buffer
	if err := democmd.Run(ctx, o, &out, &errOut); err != nil {
		return fmt.Errorf("the demo: %w\n%s%s", err, out.String(), errOut.String())
	}
	if extraErr != nil {
		return extraErr
	}
	// What `make demo` prints: its command line, then the demo's output.
	blocks["demo"] = fmt.Sprintf("bin/mailtrace demo --assets %s --minio %s\n", rel(assets), rel(minio)) + out.String()
	for name, content := range blocks {
		if strings.Contains(content, mustWd()) {
			return fmt.Errorf("the %s output holds an absolute path of the checkout:\n%s", name, content)
		}
		if readme, err = docs.ReplaceOutputBlock(readme, name, content); err != nil {
			return err
		}
	}
	if err := os.WriteFile(docs.ReadmeFile, readme, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %d recorded outputs of %s\n", len(blocks), docs.ReadmeFile)
	return nil
}

// extras records what the admin looks at in the running demo.
func extras(ctx context.Context, kubeconfig string, blocks map[string]string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: plugin.NewScheme()})
	if err != nil {
		return err
	}

	var wide bytes.Buffer
	if err := cli.KubectlGet(ctx, cfg, "messagetraces", namespace, true, &wide); err != nil {
		return err
	}
	blocks["get-mt-wide"] = wide.String()

	// kubectl get mt undelivered-to-partner -o yaml: spec and status, with
	// the first two rows.
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("MessageTrace"))
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: firstTrace}, u); err != nil {
		return err
	}
	status, _, _ := unstructured.NestedMap(u.Object, "status")
	if rows, ok := status["rows"].([]any); ok && len(rows) > 2 {
		status["rows"] = rows[:2]
	}
	y, err := yaml.Marshal(map[string]any{"spec": u.Object["spec"], "status": status})
	if err != nil {
		return err
	}
	blocks["first-trace-status"] = string(y)

	// The store, through the mailtrace command: a CSV export, and the
	// newest failure's events as NDJSON.
	var mt v1alpha1.MessageTrace
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: showcase}, &mt); err != nil {
		return err
	}
	if len(mt.Status.Rows) == 0 {
		return errors.New(showcase + " has no rows")
	}
	first := mt.Status.Rows[0]
	store := "sqlite://.demo/mailtrace.db"
	csv, err := mailtrace(ctx, "query", "--store", store, "--since", "7d", "--subject", "=SUM", "--limit", "2", "-o", "csv")
	if err != nil {
		return err
	}
	blocks["query-csv"] = csv
	events, err := mailtrace(ctx, "details", "--store", store, "--trace-id", first.MessageTraceID, "--recipient", first.Recipient, "-o", "json")
	if err != nil {
		return err
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(events), "\n") {
		if strings.Contains(l, `"event":"Receive"`) || strings.Contains(l, `"event":"Fail"`) {
			keep = append(keep, l)
		}
	}
	blocks["events-ndjson"] = strings.Join(keep, "\n") + "\n"
	return nil
}

// mailtrace runs a mailtrace command in-process and returns its output.
func mailtrace(ctx context.Context, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := cli.NewRootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := cmd.ExecuteContext(ctx); err != nil {
		return "", fmt.Errorf("mailtrace %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// rel is p relative to the working directory (the checkout) when below it.
func rel(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(mustWd(), abs); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func mustWd() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}
