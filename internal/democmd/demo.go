// Package democmd is `mailtrace demo`: the whole product on this machine.
// It links envtest, so it is only in binaries built with the demo tag
// (make build); the operator image's binary does not carry it.
package democmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/demo"
	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/server"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/plugin"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

// Options configure `mailtrace demo`.
type Options struct {
	// Assets is the directory with kube-apiserver and etcd.
	Assets string
	// MinIO is the MinIO server binary that holds the demo's report bucket.
	MinIO string
	// Dir is the work directory: kubeconfig, mailtrace.db and MinIO's data go there.
	Dir string
	// Wait keeps the control plane and the manager running until ctx ends.
	Wait bool
	// Timeout bounds the wait for the sample traces.
	Timeout time.Duration
	// Verbose shows the manager's logs.
	Verbose bool
	// Namespace the samples are created in.
	Namespace string
	// Started, when set, is called once everything is printed and, with
	// Wait, before waiting (tests use it to explore the running demo).
	Started func(kubeconfig string)
}

// The demo's names.
const (
	// demoShowcase is the sample whose rows and first message's timeline the demo prints.
	demoShowcase = "failed-last-7-days"
	// demoBucket receives the reports, through the ReportStore demoStore.
	demoBucket = "mail-reports"
	demoStore  = "reports"
	// demoReportTrace is the 30-day trace answered by a report (config/samples/reports).
	demoReportTrace = "partner-last-30-days"
	// demoSchedule is run at once with the run-now annotation.
	demoSchedule = "failed-weekly"
	// demoBatch is how many log lines go in one HTTP POST.
	demoBatch = 1000
)

// NewCommand is `mailtrace demo`. It is its own package because it links
// envtest (a control plane on this machine): bin/mailtrace has it (make
// build), the image's binary does not (see cmd/mailtrace).
func NewCommand() *cobra.Command {
	o := Options{Namespace: "default"}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run mailtrace end to end on this machine: control plane, S3, manager, ingester, mail logs, traces and a report",
		Long: `Start a local control plane (kube-apiserver and etcd, built by hack/envtest.sh)
with mailtrace's CRDs and a MinIO server on loopback (built by hack/minio.sh)
with a bucket and a ReportStore for it; run the manager in-process with the
embedded SQLite store and the ingester (HTTP on loopback, with a generated
token); send it 90 days of generated Postfix log lines of example.com over
HTTP, as a log shipper would; apply the sample MessageTraces, a 30-day trace
answered by a CSV report, and a MessageTraceSchedule run at once; wait for
their answers and print them.

With --wait (the default when stdin is a terminal) everything keeps running
until Ctrl-C, so you can explore with kubectl and "mailtrace query".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Assets, "assets", demo.DefaultAssets(), "directory with the kube-apiserver and etcd binaries (hack/envtest.sh prints it; env KUBEBUILDER_ASSETS)")
	fl.StringVar(&o.MinIO, "minio", demo.DefaultMinIO(), "MinIO server binary for the report bucket (hack/minio.sh builds it and prints its path)")
	fl.StringVar(&o.Dir, "dir", ".demo", "work directory for the kubeconfig, the SQLite store and MinIO's data (recreated on every run)")
	fl.BoolVar(&o.Wait, "wait", term.IsTerminal(int(os.Stdin.Fd())), "keep the control plane and manager running until Ctrl-C (default: true when stdin is a terminal)")
	fl.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long to wait for the sample traces to succeed")
	fl.BoolVar(&o.Verbose, "verbose", false, "show the manager's logs")
	return cmd
}

// Run runs the demo; it returns when everything has stopped.
func Run(ctx context.Context, o Options, out, errOut io.Writer) (err error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	level := zapcore.ErrorLevel
	if o.Verbose {
		level = zapcore.InfoLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(errOut), zap.UseDevMode(true), zap.Level(level)))

	// Absolute, as the binaries run in other directories (MinIO in its
	// data directory); printed relative to the working directory.
	for _, p := range []*string{&o.Assets, &o.MinIO} {
		if abs, err := filepath.Abs(*p); err == nil && *p != "" {
			*p = abs
		}
	}
	if err := demo.CheckAssets(o.Assets); err != nil {
		return err
	}
	if err := demo.CheckMinIO(o.MinIO); err != nil {
		return err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "mailtrace.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")

	// The control plane.
	fmt.Fprintf(out, "starting control plane (kube-apiserver and etcd from %s)...\n", shortPath(o.Assets))
	started := time.Now()
	cp, err := demo.StartControlPlane(o.Assets, dir, cli.NewScheme())
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping control plane...")
		if serr := cp.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop the control plane: %w", serr)
		}
	}()
	if err := cp.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}
	fmt.Fprintf(out, "control plane ready in %s (CRDs from %s); kubeconfig written to %s\n",
		time.Since(started).Round(100*time.Millisecond), shortPath(cp.CRDSource), shortPath(kubeconfig))

	// The S3 server, a bucket, and a ReportStore with its credentials Secret.
	s3, err := demo.StartMinIO(ctx, o.MinIO, filepath.Join(dir, "minio"))
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping MinIO...")
		if serr := s3.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop MinIO: %w", serr)
		}
	}()
	if err := s3.MakeBucket(ctx, demoBucket); err != nil {
		return fmt.Errorf("create bucket %s: %w", demoBucket, err)
	}
	fmt.Fprintf(out, "MinIO listening on http://%s (data in %s, generated credentials), bucket %s created\n", s3.Endpoint, shortPath(s3.Dir), demoBucket)
	c, err := client.New(cp.Config, client.Options{Scheme: cli.NewScheme()})
	if err != nil {
		return err
	}
	if err := createReportStore(ctx, c, o.Namespace, s3); err != nil {
		return err
	}
	fmt.Fprintf(out, "secret/%s-credentials and reportstore.mailtrace.io/%s created (bucket %s)\n", demoStore, demoStore, demoBucket)

	// The store, and the manager with the ingester, in-process, sharing
	// the `manager` command's wiring.
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	// One user on a throwaway control plane: no tenants to keep apart.
	// Its MinIO runs on loopback, an internal destination: granted.
	mgr, err := cli.NewManager(cp.Config, st, cli.ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0", Tenancy: cli.TenancyDisabled,
		AllowDestinations: []string{"127.0.0.0/8", "::1"},
		Reports:           cli.ReportOptions{CheckInterval: 10 * time.Second}})
	if err != nil {
		return err
	}
	// The ingester, as `manager --ingest-http` runs it, on loopback with
	// a generated bearer token.
	token := randomToken()
	ing := server.New(st, server.Options{
		HTTP:  "127.0.0.1:0",
		Token: token,
		Pipeline: server.PipelineOptions{
			Correlator: ingest.Config{AcceptedDomains: demo.AcceptedDomains},
			Live:       true,
		},
		Log: ctrl.Log.WithName("ingest"),
	})
	if err := mgr.Add(ing); err != nil {
		return err
	}
	mctx, stopManager := context.WithCancel(ctx)
	mdone := make(chan error, 1)
	go func() { mdone <- mgr.Start(mctx) }()
	defer func() {
		stopManager()
		fmt.Fprintln(out, "stopping manager...")
		if merr := <-mdone; merr != nil && !errors.Is(merr, context.Canceled) && err == nil {
			err = fmt.Errorf("manager: %w", merr)
		}
	}()
	addr := ing.Addr("http")
	if addr == nil {
		return fmt.Errorf("the ingester did not start: %v", <-mdone)
	}
	ingestURL := "http://" + addr.String() + "/ingest"
	fmt.Fprintf(out, "manager started, with the embedded store %s and the ingester on %s (bearer token generated)\n", shortPath(dbPath), ingestURL)

	// The mail logs, through the real ingest path.
	lines := demo.GenerateLog(time.Now())
	if err := postLines(ctx, out, ingestURL, token, lines); err != nil {
		return err
	}

	// The samples, a 30-day trace with a report, and a schedule run now.
	mts, files, err := demo.SampleTraces()
	if err != nil {
		return err
	}
	for i := range mts {
		mts[i].Namespace = o.Namespace
		if err := c.Create(ctx, &mts[i]); err != nil {
			return fmt.Errorf("create MessageTrace %s (config/samples/%s): %w", mts[i].Name, files[i], err)
		}
		fmt.Fprintf(out, "messagetrace.mailtrace.io/%s created (config/samples/%s)\n", mts[i].Name, files[i])
	}
	if err := waitReportStore(ctx, c, o.Namespace, o.Timeout, mdone); err != nil {
		return err
	}
	rt := reportTrace(o.Namespace)
	if err := c.Create(ctx, rt); err != nil {
		return fmt.Errorf("create MessageTrace %s: %w", rt.Name, err)
	}
	mts = append(mts, *rt)
	fmt.Fprintf(out, "messagetrace.mailtrace.io/%s created (config/samples/reports: 30 days, a gzipped CSV report in %s)\n", rt.Name, demoStore)
	sched := demoScheduleObject(o.Namespace)
	if err := c.Create(ctx, sched); err != nil {
		return fmt.Errorf("create MessageTraceSchedule %s: %w", sched.Name, err)
	}
	fmt.Fprintf(out, "messagetraceschedule.mailtrace.io/%s created (config/samples/default-queries/schedules, annotated %s: one run at once)\n", sched.Name, v1alpha1.AnnotationRunNow)
	run, err := waitForRun(ctx, c, sched, o.Timeout, mdone)
	if err != nil {
		return err
	}
	mts = append(mts, *run)
	fmt.Fprintf(out, "waiting for %d MessageTraces to succeed...\n", len(mts))
	done, err := waitForTraces(ctx, c, mts, o.Timeout, mdone)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "\n$ kubectl get mt\n")
	if err := cli.KubectlGet(ctx, cp.Config, "messagetraces", o.Namespace, false, out); err != nil {
		return err
	}

	if show := findTrace(done, demoShowcase); show != nil {
		fmt.Fprintf(out, "\nstatus.rows of %s (kubectl get mt %s -o yaml), as a table:\n", show.Name, show.Name)
		tw, err := cli.NewRowWriter("table", out)
		if err != nil {
			return err
		}
		for _, r := range show.Status.Rows {
			if err := tw.Write(rowFromStatus(r)); err != nil {
				return err
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(show.Status.Rows) > 0 {
			// why the newest one failed: a MessageTrace asking for its details
			first := show.Status.Rows[0]
			dt := detailsTrace(o.Namespace, first)
			if err := c.Create(ctx, dt); err != nil {
				return fmt.Errorf("create MessageTrace %s: %w", dt.Name, err)
			}
			got, err := waitForTraces(ctx, c, []v1alpha1.MessageTrace{*dt}, o.Timeout, mdone)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nwhy the newest one failed: a MessageTrace asking for its details (spec.details: {messageTraceId: %s, recipient: %s})\n",
				first.MessageTraceID, first.Recipient)
			fmt.Fprintf(out, "$ kubectl get mt %s -o jsonpath='{.status.details}', as a table:\n", dt.Name)
			if err := plugin.PrintDetailsTimeline(out, out, got[0].Status.Details); err != nil {
				return err
			}
		}
	}
	if rep := findTrace(done, demoReportTrace); rep != nil {
		if err := printReport(ctx, out, s3, rep); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\n$ kubectl get mts\n")
	if err := cli.KubectlGet(ctx, cp.Config, "messagetraceschedules", o.Namespace, false, out); err != nil {
		return err
	}

	self := selfPath()
	if o.Wait {
		fmt.Fprintf(out, "\nTo keep exploring, in another terminal:\n")
	} else {
		fmt.Fprintf(out, "\nThe store stays in %s; to explore it:\n", shortPath(dbPath))
	}
	fmt.Fprintf(out, "  %s query --store sqlite://%s --since 7d --status Failed\n", self, shortPath(dbPath))
	fmt.Fprintf(out, "  %s query --store sqlite://%s --sender '*@example.com' --since 24h -o csv\n", self, shortPath(dbPath))
	if !o.Wait {
		fmt.Fprintf(out, "To explore with kubectl too, run the demo with --wait (it keeps the control plane up until Ctrl-C), then:\n")
	}
	fmt.Fprintf(out, "  export KUBECONFIG=%s\n  kubectl get mt\n  kubectl get mt %s -o yaml\n  kubectl wait --for=condition=Succeeded mt/%s\n  kubectl get mts,reportstores\n",
		shortPath(kubeconfig), demoShowcase, demoShowcase)
	if o.Wait {
		fmt.Fprintf(out, "  curl -H 'Authorization: Bearer %s' --data-binary @/var/log/mail.log %s\n", token, ingestURL)
	}

	if o.Started != nil {
		o.Started(kubeconfig)
	}
	if o.Wait {
		fmt.Fprintln(out, "\nThe control plane, MinIO, the manager and the ingester keep running; press Ctrl-C to stop.")
		select {
		case <-ctx.Done():
		case merr := <-mdone:
			mdone <- merr
		}
		fmt.Fprintln(out)
	}
	return nil
}

// waitForTraces polls until every trace is finished; it fails when one
// fails, when the manager stops, or after timeout.
func waitForTraces(ctx context.Context, c client.Client, mts []v1alpha1.MessageTrace, timeout time.Duration, mdone chan error) ([]v1alpha1.MessageTrace, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var got []v1alpha1.MessageTrace
		pending := []string{}
		for _, mt := range mts {
			var cur v1alpha1.MessageTrace
			if err := c.Get(ctx, client.ObjectKeyFromObject(&mt), &cur); err != nil {
				return nil, err
			}
			if !cur.IsFinished() || (cur.Spec.Report != nil && !reportFinished(cur.Status.Report)) {
				pending = append(pending, cur.Name)
				continue
			}
			if cond := cur.Condition(v1alpha1.ConditionFailed); cond != nil && cond.Status == "True" {
				return nil, fmt.Errorf("MessageTrace %s failed: %s: %s", cur.Name, cond.Reason, cond.Message)
			}
			got = append(got, cur)
		}
		if len(pending) == 0 {
			return got, nil
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return nil, fmt.Errorf("interrupted while waiting for the MessageTraces: %w", parent.Err())
			}
			return nil, fmt.Errorf("MessageTraces %v did not succeed within %s (run with --verbose to see the manager's logs)", pending, timeout)
		case err := <-mdone:
			mdone <- err
			return nil, fmt.Errorf("the manager stopped: %v", err)
		case <-tick.C:
		}
	}
}

func reportFinished(r *v1alpha1.ReportStatus) bool {
	return r != nil && (r.Phase == v1alpha1.ReportPhaseCompleted || r.Phase == v1alpha1.ReportPhaseFailed)
}

func findTrace(mts []v1alpha1.MessageTrace, name string) *v1alpha1.MessageTrace {
	for i := range mts {
		if mts[i].Name == name {
			return &mts[i]
		}
	}
	return nil
}

func rowFromStatus(r v1alpha1.TraceRow) mailflow.Row {
	return mailflow.Row{
		Received: r.Received.Time, Sender: r.Sender, Recipient: r.Recipient, Subject: r.Subject,
		Status: mailflow.Status(r.Status), MessageID: r.MessageID, MessageTraceID: r.MessageTraceID,
		Size: r.Size, FromIP: r.FromIP, ToIP: r.ToIP, Direction: mailflow.Direction(r.Direction),
	}
}

// selfPath is how to run this binary again: its path relative to the working
// directory when it lies below it.
func selfPath() string { return shortPath(os.Args[0]) }

// shortPath is p relative to the working directory when it lies below it
// (.demo/kubeconfig), so that what the demo prints is true of any checkout;
// p itself otherwise.
func shortPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return rel
	}
	return p
}
