package plugin

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/internal/console"
)

// uiOptions are `kubectl mailtrace ui`'s flags.
type uiOptions struct {
	address   string
	noBrowser bool
	domains   []string
	// started, when set, is told the URL instead of a browser (tests).
	started func(url string)
}

func (p *plugin) uiCommand() *cobra.Command { return p.uiCommandWith(&uiOptions{}) }

func (p *plugin) uiCommandWith(o *uiOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Open the message trace console in a browser, acting with your own Kubernetes credentials",
		Long: `ui serves the message trace console on 127.0.0.1 (a random port) and opens
it in your browser: the source product's message trace pages (default,
custom and recent queries, the new-trace form, results and a message's
details, reports, schedules), in English or Japanese. Every Kubernetes
request it makes uses your kubeconfig's credentials, so your RBAC and the
namespace's TracePolicy grants decide what it shows, as for kubectl.

The printed URL holds a one-time token, exchanged at the first visit for a
session cookie; treat it as a password until then. Ctrl-C stops the console.`,
		Example: `  kubectl mailtrace ui
  kubectl mailtrace ui -n team-a --accepted-domain example.com --no-browser`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return p.serveUI(ctx, c, ns, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.address, "address", "127.0.0.1:0", "address to serve on (a loopback address; port 0 picks a free one)")
	fl.BoolVar(&o.noBrowser, "no-browser", false, "print the URL only; do not open a browser")
	fl.StringSliceVar(&o.domains, "accepted-domain", nil, "the organisation's domain, for the default queries (repeatable; default: by direction)")
	return cmd
}

func (p *plugin) serveUI(ctx context.Context, c client.Client, ns string, o *uiOptions) error {
	host, _, err := net.SplitHostPort(o.address)
	if err != nil {
		return fmt.Errorf("--address: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--address %s: the console serves on a loopback address only (it acts with your credentials); for a shared console use the Helm chart's console", o.address)
	}
	srv, err := console.New(console.Options{Mode: console.Local, Client: c, Namespace: ns, Domains: o.domains, Log: p.streams.ErrOut})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.address)
	if err != nil {
		return err
	}
	url := srv.LoginURL(ln.Addr().String())
	fmt.Fprintf(p.streams.Out, "Message trace console for namespace %s: %s\n", ns, url)
	fmt.Fprintln(p.streams.ErrOut, "The link works once (it opens a session in the first browser that uses it). Press Ctrl-C to stop.")
	switch {
	case o.started != nil:
		o.started(url)
	case !o.noBrowser:
		if err := openBrowser(url); err != nil {
			fmt.Fprintf(p.streams.ErrOut, "Could not open a browser (%v): open the link above.\n", err)
		}
	}
	return srv.Serve(ctx, ln)
}

// openBrowser opens url with the desktop's handler, when there is one.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return fmt.Errorf("no display")
		}
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
