package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/rest"

	"github.com/mailtrace/mailtrace/internal/textable"
)

// TableHeaders returns the column headers of every table the commands
// print, by the command that prints it.
func TableHeaders() map[string][]string {
	c := func(s []string) []string { return append([]string(nil), s...) }
	return map[string][]string{
		"mailtrace query":               c(textable.HeadQuery),
		"mailtrace query -o wide":       c(textable.HeadQueryWide),
		"mailtrace details":             c(textable.HeadTimeline),
		"kubectl mailtrace run":         c(textable.HeadPluginRows),
		"kubectl mailtrace run -o wide": c(textable.HeadPluginWide),
		"kubectl mailtrace details":     c(textable.HeadPluginDetail),
		"kubectl mailtrace list":        c(textable.HeadPluginList),
	}
}

// KubectlGet prints what `kubectl get RESOURCE [-o wide]` prints for the
// namespace's objects of a mailtrace kind (resource is the plural, such as
// messagetraces): the API server's table of the CRD's printer columns,
// through kubectl's own table printer.
func KubectlGet(ctx context.Context, cfg *rest.Config, resource, ns string, wide bool, w io.Writer) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("%s/apis/mailtrace.io/v1alpha1/namespaces/%s/%s", strings.TrimSuffix(cfg.Host, "/"), ns, resource)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kubectl get %s: %s: %s", resource, resp.Status, strings.TrimSpace(string(b)))
	}
	var t metav1.Table
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("kubectl get %s: %w", resource, err)
	}
	return printers.NewTablePrinter(printers.PrintOptions{Wide: wide}).PrintObj(&t, w)
}
