package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"k8s.io/utils/ptr"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/controllers/downloadrequest"
	"github.com/mailtrace/mailtrace/controllers/messagetrace"
	"github.com/mailtrace/mailtrace/controllers/messagetraceschedule"
	"github.com/mailtrace/mailtrace/controllers/reportstore"
	"github.com/mailtrace/mailtrace/internal/egress"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storemetrics"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
)

// DefaultRetention is how long the store keeps messages unless --retention says otherwise.
const DefaultRetention = 90 * 24 * time.Hour

// EnvStoreReplica names the environment variable that sets --store-replica's
// default (a URL with a password is better kept out of the command line).
const EnvStoreReplica = "MAILTRACE_STORE_REPLICA"

// pruneInterval is how often the manager removes messages older than the retention.
const pruneInterval = time.Hour

// ManagerOptions configure the manager; the `manager` command fills them from
// flags, the demo from its own defaults.
type ManagerOptions struct {
	MetricsBindAddress     string // "0" turns the metrics endpoint off
	HealthProbeBindAddress string // "0" turns the probes off
	LeaderElection         bool
	// LeaderElectionNamespace holds the leader election Lease; empty means
	// the manager's own namespace (in-cluster only).
	LeaderElectionNamespace string
	// QueryTimeout bounds one trace against the store (0: the controller's default).
	QueryTimeout time.Duration
	// MaxConcurrentReconciles is how many traces run at once (0: the controller's default).
	MaxConcurrentReconciles int
	// Ingest, when a listener is set, takes Postfix logs into st (see ingest.go).
	Ingest IngestOptions
	// Retention is how long messages are kept; older ones are pruned hourly. 0 turns pruning off.
	Retention time.Duration
	// Notify configures the SMTP relay of email notifications.
	Notify NotifyOptions
	// Reports: the export pool, the status threshold, the default report store.
	Reports ReportOptions
	// Tenancy is TenancyEnabled (also when empty: a namespace's traces see
	// only what TracePolicies grant it) or TenancyDisabled (a single-team
	// cluster: every trace sees everything). Only an explicit
	// TenancyDisabled turns scoping off.
	Tenancy string
	// OperatorNamespace is not scoped by tenancy ("": none), and its
	// webhooks, ReportStores and emails may go anywhere.
	OperatorNamespace string
	// AllowDestinations grants every namespace these internal destinations
	// (host names, wildcard host names, CIDRs) for webhooks and ReportStore
	// endpoints; TracePolicies grant more per namespace (--allow-destination).
	AllowDestinations []string
	// AllowEmailRecipients may receive any namespace's email notifications
	// (address patterns, --allow-email-recipient).
	AllowEmailRecipients []string
}

// grants builds the destination and recipient grants of every namespace.
func (o ManagerOptions) grants(mgr ctrl.Manager) (*grants.Resolver, error) {
	rules, err := egress.ParseRules(o.AllowDestinations)
	if err != nil {
		return nil, fmt.Errorf("--allow-destination: %w", err)
	}
	for _, p := range o.AllowEmailRecipients {
		if err := mailflow.ValidatePattern(p); err != nil {
			return nil, fmt.Errorf("--allow-email-recipient %q: %w", p, err)
		}
	}
	return &grants.Resolver{
		Reader: mgr.GetClient(), NamespaceReader: mgr.GetAPIReader(),
		Global: rules, GlobalRecipients: o.AllowEmailRecipients,
		TrustedNamespace: o.OperatorNamespace,
		AnyRecipient:     o.Tenancy == TenancyDisabled,
	}, nil
}

// Values of ManagerOptions.Tenancy (--tenancy).
const (
	TenancyEnabled  = "enabled"
	TenancyDisabled = "disabled"
)

// tenancy returns the MessageTrace controller's scoping (nil: disabled).
func (o ManagerOptions) tenancy() (*messagetrace.Tenancy, error) {
	switch o.Tenancy {
	case "", TenancyEnabled:
		return &messagetrace.Tenancy{OperatorNamespace: o.OperatorNamespace}, nil
	case TenancyDisabled:
		return nil, nil
	}
	return nil, fmt.Errorf("--tenancy=%q: want %s or %s", o.Tenancy, TenancyEnabled, TenancyDisabled)
}

// NewScheme returns a scheme with client-go's kinds and mailtrace.io/v1alpha1.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// NewManager builds the controller-runtime manager with the MessageTrace
// controller on st, health and readiness checks (readiness pings the store),
// and the retention pruner. It is shared by `mailtrace manager` and
// `mailtrace demo`.
func NewManager(cfg *rest.Config, st store.Store, o ManagerOptions) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  NewScheme(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        "mailtrace-manager.mailtrace.io",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// The process exits when the manager stops, so handing the lease
		// over at once is safe and lets a new replica lead without waiting.
		LeaderElectionReleaseOnCancel: true,
		// One manager per process in production; the demo and the tests start
		// several in one process, which controller-runtime's guard against
		// duplicate controller names (and so duplicate metrics) would refuse.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("store", storeCheck(st)); err != nil {
		return nil, err
	}
	if t, ok := st.(store.StatusTotaler); ok {
		// Messages per status and direction from the store's rollups. The
		// demo and the tests build several managers in one process: the
		// first registration serves them all.
		if err := crmetrics.Registry.Register(storemetrics.New(t, nil)); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, err
		}
	}
	tenancy, err := o.tenancy()
	if err != nil {
		return nil, err
	}
	defStore, err := openDefaultReportStore(context.Background(), o.Reports.Default)
	if err != nil {
		return nil, err
	}
	r := &messagetrace.Reconciler{
		Client:   mgr.GetClient(),
		Scheme:   mgr.GetScheme(),
		Store:    st,
		Recorder: mgr.GetEventRecorder(messagetrace.ControllerName),
		Clock:    clock.RealClock{},
		Options: messagetrace.Options{
			QueryTimeout:            o.QueryTimeout,
			MaxConcurrentReconciles: o.MaxConcurrentReconciles,
			Workers:                 o.Reports.Workers,
			StatusRangeLimit:        o.Reports.Threshold,
		},
	}
	g, err := o.grants(mgr)
	if err != nil {
		return nil, err
	}
	r.DefaultReportStore = defStore
	r.Tenancy = tenancy
	r.Grants = g
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the MessageTrace controller: %w", err)
	}
	if err := (&downloadrequest.Reconciler{DefaultReportStore: defStore, Clock: clock.RealClock{}, Grants: g}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the DownloadRequest controller: %w", err)
	}
	rsr := &reportstore.Reconciler{Options: reportstore.Options{CheckInterval: o.Reports.CheckInterval}, Grants: g}
	if err := rsr.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the ReportStore controller: %w", err)
	}
	if err := (&messagetraceschedule.Reconciler{Clock: clock.RealClock{}}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the MessageTraceSchedule controller: %w", err)
	}
	if err := setupNotifications(mgr, o.Notify, g); err != nil {
		return nil, err
	}
	if o.Ingest.Enabled() {
		if err := addIngestToManager(mgr, st, o.Ingest); err != nil {
			return nil, err
		}
	}
	if o.Retention > 0 {
		log := ctrl.Log.WithName("retention")
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			pruneLoop(ctx, st, o.Retention, clock.RealClock{}, log)
			return nil
		})); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}

// storeCheck is a readiness check: the manager is ready while the store answers.
func storeCheck(st store.Store) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			return fmt.Errorf("trace store: %w", err)
		}
		return nil
	}
}

// pruneLoop removes messages received before now-retention, now and then
// every pruneInterval, until ctx ends. It runs on the leader only.
func pruneLoop(ctx context.Context, st store.Pruner, retention time.Duration, clk clock.Clock, log logr.Logger) {
	for {
		cutoff := clk.Now().Add(-retention)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		if err := st.Prune(pctx, cutoff); err != nil && ctx.Err() == nil {
			log.Error(err, "pruning the trace store failed; retrying later", "cutoff", cutoff)
		} else if err == nil {
			log.V(1).Info("pruned the trace store", "cutoff", cutoff)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-clk.After(pruneInterval):
		}
	}
}

type managerFlags struct {
	rf    reportFlags
	store string
	// replica and maxLag: --store-replica, --store-replica-max-lag
	replica string
	maxLag  time.Duration
	opts    ManagerOptions
	zap     zap.Options
}

func newManagerCommand() *cobra.Command {
	f := managerFlags{zap: zap.Options{Development: false}}
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the operator: reconcile MessageTraces against the trace store",
		Long: `Run the controller manager. It connects to the cluster named by --kubeconfig
(or the in-cluster configuration, or $KUBECONFIG), opens the trace store, and
answers every MessageTrace in the cluster. /healthz and /readyz are served on
--health-probe-bind-address (readyz fails while the store does not answer);
Prometheus metrics on --metrics-bind-address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
			return runManager(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	addStoreFlag(cmd, &f.store)
	fl.StringVar(&f.replica, "store-replica", os.Getenv(EnvStoreReplica), "postgres:// URL of a hot standby of the PostgreSQL store: traces, counts and reports read from it, ingest and retention write to --store (env "+EnvStoreReplica+")")
	fl.Lookup("store-replica").DefValue = storeopen.Redact(fl.Lookup("store-replica").DefValue)
	fl.DurationVar(&f.maxLag, "store-replica-max-lag", 30*time.Second, "replica lag above which a trace's StoreAvailable condition says ReplicaLagging (its newest messages may be missing)")
	addNotifyFlags(fl, &f.opts.Notify)
	fl.StringVar(&f.opts.MetricsBindAddress, "metrics-bind-address", ":8080", `address the metrics endpoint binds to ("0" turns it off)`)
	fl.StringVar(&f.opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address the health probe endpoint binds to")
	fl.BoolVar(&f.opts.LeaderElection, "leader-elect", false, "elect a leader, so that only one of several replicas reconciles")
	fl.StringVar(&f.opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace; required out of cluster)")
	fl.DurationVar(&f.opts.QueryTimeout, "query-timeout", 0, "longest a trace may run against the store (default: the controller's, 30s)")
	fl.IntVar(&f.opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 0, "traces run at once (default: the controller's)")
	addReportFlags(fl, &f.opts.Reports, &f.rf)
	fl.DurationVar(&f.opts.Retention, "retention", DefaultRetention, "how long messages are kept in the store; older ones are pruned hourly (0 disables pruning)")
	addIngestFlags(fl, "ingest-", &f.opts.Ingest)
	fl.StringVar(&f.opts.Tenancy, "tenancy", TenancyEnabled, `"enabled": a namespace's MessageTraces see only the addresses TracePolicies grant it (none: AccessDenied); "disabled": every trace sees every message (a single-team cluster)`)
	fl.StringSliceVar(&f.opts.AllowDestinations, "allow-destination", nil, "internal destinations every namespace's webhooks and ReportStores may reach (host name, *.wildcard host name, CIDR or IP; repeat or comma-separate); others are refused when they resolve to a loopback, link-local, private or other non-public address unless a TracePolicy grants them")
	fl.StringSliceVar(&f.opts.AllowEmailRecipients, "allow-email-recipient", nil, "address patterns any namespace's email notifications may go to (such as *@ops.example.com), beyond what TracePolicies grant")
	fl.StringVar(&f.opts.OperatorNamespace, "operator-namespace", os.Getenv("POD_NAMESPACE"), "the operator's own namespace, whose MessageTraces are not scoped by tenancy (default $POD_NAMESPACE; empty: none)")
	// --kubeconfig, registered by controller-runtime's config package.
	gofs := flag.NewFlagSet("manager", flag.ContinueOnError)
	config.RegisterFlags(gofs)
	f.zap.BindFlags(gofs)
	fl.AddGoFlagSet(gofs)
	return cmd
}

func runManager(ctx context.Context, f managerFlags) error {
	log := ctrl.Log.WithName("setup")
	cfg, err := config.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	if f.opts.Reports.Default, err = f.rf.defaultStoreConfig(os.Getenv); err != nil {
		return err
	}
	st, err := storeopen.OpenWithOptions(ctx, f.store, storeopen.Options{ReplicaURL: f.replica, MaxReplicaLag: f.maxLag})
	if err != nil {
		return err
	}
	defer st.Close()
	mgr, err := NewManager(cfg, st, f.opts)
	if err != nil {
		return err
	}
	log.Info("starting manager", "version", versionString(), "store", storeopen.Redact(f.store), "storeReplica", storeopen.Redact(f.replica),
		"tenancy", f.opts.Tenancy, "operatorNamespace", f.opts.OperatorNamespace)
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}
