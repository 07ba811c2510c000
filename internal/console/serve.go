package console

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
)

// defaultCAFile is where the chart mounts the cluster's CA (the
// kube-root-ca.crt ConfigMap): the console's pod mounts no ServiceAccount
// token, so the usual path is not there.
const defaultCAFile = "/etc/mailtrace/kube-ca/ca.crt"

// NewServeCommand is `mailtrace console`: the console of the Helm chart's
// optional Deployment, behind an OIDC proxy. It acts only with the token
// each request carries (Authorization: Bearer, as oauth2-proxy's
// --pass-authorization-header forwards the user's ID token); it has no
// credentials of its own and refuses to start with any.
func NewServeCommand() *cobra.Command {
	var listen, ns, apiServer, caFile string
	var domains []string
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the message trace console in the cluster, acting only with each user's own bearer token (behind an OIDC proxy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if apiServer == "" {
				host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
				if host == "" || port == "" {
					return errors.New("--api-server is needed outside a cluster (KUBERNETES_SERVICE_HOST is not set)")
				}
				apiServer = "https://" + net.JoinHostPort(host, port)
			}
			cfg := &rest.Config{Host: apiServer}
			if caFile != "" {
				if _, err := os.Stat(caFile); err != nil {
					return fmt.Errorf("--api-ca-file: %w", err)
				}
				cfg.CAFile = caFile
			}
			srv, err := New(Options{Mode: Proxy, Config: cfg, Namespace: ns, Domains: domains, Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "message trace console on %s for %s; every request acts with its own bearer token\n", ln.Addr(), apiServer)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := srv.Serve(ctx, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", ":8080", "address to serve on (plain HTTP: put the OIDC proxy, which terminates TLS, in front)")
	fl.StringVar(&ns, "namespace", "default", "namespace the console opens (a user switches in the page header)")
	fl.StringVar(&apiServer, "api-server", "", "the Kubernetes API server's URL (default: the in-cluster service)")
	fl.StringVar(&caFile, "api-ca-file", defaultCAFile, "CA bundle of the API server's certificate")
	fl.StringSliceVar(&domains, "accepted-domain", nil, "the organisation's domain, for the default queries (repeatable)")
	return cmd
}
