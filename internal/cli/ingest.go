package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/server"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// EnvIngestToken names the environment variable holding the HTTP ingest
// bearer token (when --token-file is not given).
const EnvIngestToken = "MAILTRACE_INGEST_TOKEN"

// IngestOptions configure the ingest server the manager may run.
type IngestOptions = server.Options

// addIngestFlags binds the ingest server's flags, each name prefixed
// (the manager uses "ingest-", the ingest command none).
func addIngestFlags(fl *pflag.FlagSet, prefix string, o *server.Options) {
	c := &o.Pipeline.Correlator
	o.FlagPrefix = prefix
	fl.StringVar(&o.SyslogTCP, prefix+"syslog-tcp", o.SyslogTCP, `address for syslog over TCP, e.g. ":5140" (newline or octet-counted framing; TLS with --`+prefix+`tls-cert); empty: off`)
	fl.StringVar(&o.SyslogUDP, prefix+"syslog-udp", o.SyslogUDP, `address for syslog over UDP, e.g. ":5140"; empty: off`)
	fl.StringVar(&o.HTTP, prefix+"http", o.HTTP, `address for HTTP POST /ingest (raw lines, Fluent Bit or Vector JSON), e.g. ":8090"; empty: off`)
	fl.StringVar(&o.TLSCertFile, prefix+"tls-cert", "", "PEM certificate: serve syslog TCP and HTTP over TLS only (plain-text connections are refused)")
	fl.StringVar(&o.TLSKeyFile, prefix+"tls-key", "", "PEM key of --"+prefix+"tls-cert")
	fl.StringVar(&o.TLSClientCAFile, prefix+"tls-client-ca", "", "PEM CA bundle: senders authenticate with a client certificate it signed (required on syslog TCP; on HTTP instead of the token)")
	fl.StringVar(&o.TokenFile, prefix+"token-file", "", "file holding the bearer token HTTP senders must present (a mounted Secret; re-read when it changes); default: $"+EnvIngestToken)
	fl.BoolVar(&o.InsecureNoAuth, prefix+"insecure-no-auth", false, "start listeners that cannot authenticate senders (syslog without --"+prefix+"tls-client-ca, HTTP without token or client CA, UDP): only on a trusted network")
	fl.StringSliceVar(&c.AcceptedDomains, prefix+"accepted-domain", nil, `the organisation's domain (repeatable; "*.example.com" for subdomains): decides Inbound/Outbound/Internal`)
	fl.StringSliceVar(&c.ContentFilters, prefix+"content-filter", nil, "ip:port of a content filter relay (repeatable; default: loopback ports 10023, 10024, 10026)")
	fl.DurationVar(&c.LinkWait, prefix+"link-wait", 0, "how long (log time) a possible second hop waits for its link (default 5m)")
	fl.Var(&prefixesValue{&c.InternalNetworks}, prefix+"internal-network", "a network (CIDR, repeatable) whose SMTP clients are the organisation's without SASL, as Postfix's mynetworks: mail from them comes from inside (Outbound/Internal); other clients without SASL come from outside (Inbound), whatever sender they claim")
	fl.DurationVar(&c.PendingAfter, prefix+"pending-after", ingest.DefaultPendingAfter, "a message with no outcome this long (log time) after it was received (still in the queue, or its outcome never logged) is Pending, not GettingStatus")
	fl.IntVar(&c.MaxMessagesInFlight, prefix+"max-messages-in-flight", ingest.DefaultMaxMessagesInFlight, "messages the correlator keeps whole in memory (-1: no cap); past it the least recently active is evicted: its events are emitted as they stand and a compact record of it stays, so that a late line joins the same trace; at most 16 times as many records are kept, and a line for a message older than those starts a new trace")
	fl.Var(&locationValue{&c.Location}, prefix+"timezone", "time zone of RFC 3164 timestamps, e.g. Europe/Berlin (default UTC)")
	fl.StringVar(&o.Pipeline.StateFile, prefix+"state-file", "", "file that keeps the correlator's state across restarts (saved every --"+prefix+"state-interval and at shutdown); with it, accepted lines are kept in a write-ahead log (--"+prefix+"wal-dir) until their events are stored")
	fl.DurationVar(&o.Pipeline.StateInterval, prefix+"state-interval", 10*time.Second, "how often the state file is saved (and the write-ahead log trimmed behind it)")
	fl.StringVar(&o.Pipeline.WALDir, prefix+"wal-dir", "", "directory of the write-ahead log of accepted lines: an HTTP POST is answered and a syslog line read only once it is on disk there; needs --"+prefix+"state-file (default: beside it, its name with .wal, e.g. ingest-state.wal)")
	fl.Int64Var(&o.Pipeline.WALMaxBytes, prefix+"wal-max-bytes", server.DefaultWALMaxBytes, "cap of the write-ahead log: when the store falls this far behind, HTTP senders get 503 with Retry-After and syslog connections are not read until it catches up")
	fl.IntVar(&o.Pipeline.BatchSize, prefix+"batch-size", 500, "append to the store when this many events wait...")
	fl.DurationVar(&o.Pipeline.BatchWait, prefix+"batch-wait", 200*time.Millisecond, "...or when the oldest has waited this long")
	fl.IntVar(&o.Pipeline.Writers, prefix+"store-writers", 0, "appends to the store at once, each with its share of the messages (0: the store's choice, 2 for PostgreSQL, 1 for SQLite)")
	fl.IntVar(&o.MaxLineBytes, prefix+"max-line-bytes", 64<<10, "longer lines are dropped and counted")
	fl.Int64Var(&o.MaxRequestBytes, prefix+"max-request-bytes", 16<<20, "largest HTTP request body")
	fl.Float64Var(&o.LinesPerSecond, prefix+"lines-per-second", 0, "per TCP or HTTP connection: a faster sender is slowed down (0: no limit)")
	fl.IntVar(&o.MaxConnections, prefix+"max-connections", 512, "open syslog TCP connections (counted after their TLS handshake); more are refused and counted")
	fl.IntVar(&o.MaxHandshakes, prefix+"max-handshakes", 64, "syslog TLS handshakes in flight (each at most 10s); more are refused and counted")
	fl.IntVar(&o.MaxConnectionsPerIP, prefix+"max-connections-per-ip", 32, "connections from one address, on syslog TCP (open or in their TLS handshake) and on HTTP each; more are refused and counted")
	fl.DurationVar(&o.IdleTimeout, prefix+"idle-timeout", 5*time.Minute, "close a syslog TCP connection silent for this long (senders reconnect; negative: never)")
	fl.DurationVar(&o.FrameTimeout, prefix+"frame-timeout", 30*time.Second, "close a syslog TCP connection whose frame, once begun, is not complete within this (negative: never)")
	fl.DurationVar(&o.BodyTimeout, prefix+"http-body-timeout", time.Minute, "an HTTP request body must be read within this; a slower one gets 408 (negative: no limit)")
	fl.IntVar(&o.MaxRecordsPerRequest, prefix+"max-records-per-request", 100000, "lines or JSON records in one HTTP request; more get 413 and nothing of it is stored")
}

// prefixesValue is a repeatable flag of networks (CIDR, or a lone address).
type prefixesValue struct{ p *[]netip.Prefix }

func (v *prefixesValue) String() string {
	if v.p == nil {
		return ""
	}
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (v *prefixesValue) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		p, err := mailflow.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		if p.IsValid() {
			*v.p = append(*v.p, p)
		}
	}
	return nil
}

func (v *prefixesValue) Type() string { return "cidr" }

type locationValue struct{ p **time.Location }

func (l *locationValue) String() string {
	if l.p == nil || *l.p == nil {
		return ""
	}
	return (*l.p).String()
}

func (l *locationValue) Set(s string) error {
	loc, err := time.LoadLocation(s)
	if err != nil {
		return err
	}
	*l.p = loc
	return nil
}

func (l *locationValue) Type() string { return "zone" }

// addIngestToManager runs the ingest server inside the manager (for the
// embedded store): on every replica, metrics in controller-runtime's registry.
func addIngestToManager(mgr manager.Manager, st store.Store, o server.Options) error {
	o.Registerer = crmetrics.Registry
	o.Log = ctrl.Log.WithName("ingest")
	if o.TokenFile == "" && o.Token == "" {
		o.Token = os.Getenv(EnvIngestToken)
	}
	if o.Pipeline.WALDir == "" {
		o.Pipeline.WALDir = server.DefaultWALDir(o.Pipeline.StateFile)
	}
	if err := o.Validate(); err != nil {
		return err
	}
	srv := server.New(st, o)
	if err := mgr.AddHealthzCheck("ingest-wal", func(*http.Request) error { return srv.Healthy() }); err != nil {
		return err
	}
	return mgr.Add(srv)
}

type ingestFlags struct {
	store       string
	files       []string
	backfill    backfillFlags
	metricsAddr string
	opts        server.Options
	zap         zap.Options
}

func newIngestCommand() *cobra.Command {
	f := ingestFlags{opts: server.Options{SyslogTCP: ":5140", HTTP: ":8090"}}
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Read Postfix logs (syslog, HTTP, files) into the trace store",
		Long: `Read Postfix logs into the trace store, correlated into messages.

Live: listen for syslog over TCP (--syslog-tcp, newline or octet-counted
framing, TLS with --tls-cert/--tls-key) and UDP (--syslog-udp), and for HTTP
POSTs to /ingest (--http) of raw lines (text/plain) or of the JSON records
Fluent Bit and Vector send. Senders must authenticate: HTTP with a bearer
token (--token-file or $` + EnvIngestToken + `) or a client certificate,
syslog over TCP with a client certificate (--tls-client-ca); a listener that
cannot authenticate its senders refuses to start unless --insecure-no-auth
says the network is trusted. Prometheus metrics, /healthz and /readyz are served on
--metrics-bind-address. With --state-file, lines are kept in a write-ahead
log (--wal-dir) until their events are stored: an HTTP POST is answered, and
a syslog TCP connection read on, once its lines are on disk there, so a crash
loses none of them. In a container with a memory limit, the Go runtime's soft
limit is 80% of it (unless $GOMEMLIMIT is set). Run it as its own StatefulSet for PostgreSQL (the state
file and the log on a volume of its own); with the embedded SQLite store, use
the manager's --ingest-* flags instead. Each mail server's lines must reach
one ingester (see README, "Ingest").

Backfill: --file (repeatable; plain or gzip, oldest first) reads the files,
stores their events and exits:

  mailtrace ingest --file mail.log.1.gz --file mail.log --store postgres://...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
			if soft := setMemoryLimit(memlimit.FromCgroup); soft > 0 {
				ctrl.Log.WithName("ingest").Info("Go memory limit from the container's", "GOMEMLIMIT", soft)
			}
			if len(f.files) > 0 {
				setBackfillGC()
				return runIngestFiles(cmd, f)
			}
			if err := backfillOnly(cmd); err != nil {
				return err
			}
			return runIngest(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	addStoreFlag(cmd, &f.store)
	fl.StringArrayVar(&f.files, "file", nil, "log file to backfill (repeatable, plain or gzip, oldest first); the command exits when they are read")
	fl.IntVar(&f.backfill.year, "year", 0, "with --file: the year of the log's first line, for timestamps that carry none (RFC 3164; default: the latest year that does not put it in the future)")
	fl.DurationVar(&f.backfill.retention, "retention", DefaultRetention, "with --file: the manager's --retention; a log that starts before it is refused, as the manager would prune it (0: no check)")
	fl.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", `address of /metrics, /healthz and /readyz ("0": off)`)
	addIngestFlags(fl, "", &f.opts)
	return cmd
}

func runIngestFiles(cmd *cobra.Command, f ingestFlags) error {
	ctx := cmd.Context()
	// the files are their own log: a backfill that stops is run again
	// (Append keeps an event once), so it writes no write-ahead log
	f.opts.Pipeline.WALDir = ""
	c := &f.opts.Pipeline.Correlator
	now := time.Now()
	ref, err := yearReference(f.backfill.year, c.Location, now)
	if err != nil {
		return err
	}
	c.Reference = ref
	if err := checkRetention(f.files, ref, c.Location, f.backfill.retention, now); err != nil {
		return err
	}
	st, err := storeopen.Open(ctx, f.store)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	stats, err := server.IngestFiles(ctx, st, f.files, server.FileOptions{
		Pipeline:     f.opts.Pipeline,
		MaxLineBytes: f.opts.MaxLineBytes,
		Log:          ctrl.Log.WithName("ingest"),
	})
	printIngestStats(cmd, stats, time.Since(start))
	return err
}

func printIngestStats(cmd *cobra.Command, s ingest.Stats, d time.Duration) {
	out := cmd.OutOrStdout()
	rate := 0.0
	if d > 0 {
		rate = float64(s.Lines) / d.Seconds()
	}
	fmt.Fprintf(out, "lines %d (used %d, ignored %d), events %d, messages %d in %s (%.0f lines/s)\n",
		s.Lines, s.Used, s.Ignored, s.Events, s.Messages, d.Round(time.Millisecond), rate)
	var reasons []string
	for r := range s.NotUnderstood {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(out, "  not understood, %s: %d\n", r, s.NotUnderstood[r])
	}
	if s.InvalidUTF8 > 0 {
		fmt.Fprintf(out, "  invalid UTF-8 (repaired): %d\n", s.InvalidUTF8)
	}
	if s.Evicted > 0 {
		fmt.Fprintf(out, "  messages evicted from memory (over --max-messages-in-flight): %d\n", s.Evicted)
	}
}

func runIngest(ctx context.Context, f ingestFlags) error {
	log := ctrl.Log.WithName("ingest")
	if !f.opts.Enabled() {
		return errors.New("nothing to listen on: give --syslog-tcp, --syslog-udp or --http (or --file to backfill)")
	}
	o := f.opts
	if o.TokenFile == "" {
		o.Token = os.Getenv(EnvIngestToken)
	}
	if o.Pipeline.WALDir == "" {
		o.Pipeline.WALDir = server.DefaultWALDir(o.Pipeline.StateFile)
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Pipeline.WALDir == "" {
		log.Info("no --state-file: a crash loses the correlator's state and what it had not stored yet; an HTTP POST is answered once its events are stored")
	}
	st, err := storeopen.Open(ctx, f.store)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o.Registerer, o.Log = reg, log
	srv := server.New(st, o)
	stopMetrics, err := serveIngestMetrics(f.metricsAddr, reg, st, srv.Healthy, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	log.Info("starting ingest", "version", versionString(), "store", storeopen.Redact(f.store))
	return srv.Start(ctx)
}

func serveIngestMetrics(addr string, reg *prometheus.Registry, st store.Store, healthy func() error, log logr.Logger) (func(), error) {
	if addr == "" || addr == "0" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := storeCheck(st)(r); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "metrics server")
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}
