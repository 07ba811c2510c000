// Package plugin is the kubectl plugin, kubectl-mailtrace: `run`, `get`,
// `list`, `details` and `download`, with kubectl's usual flags. It is a
// client of the API only: it imports the API types, controller-runtime's
// client, cli-runtime, cobra and the small shared packages (filterflags,
// textable), never a store adapter, the controllers or envtest (a depguard
// rule and cmd/kubectl-mailtrace's deps test keep it so).
package plugin

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/filterflags"
	"github.com/mailtrace/mailtrace/internal/textable"
)

// plugin is what the kubectl-mailtrace subcommands share: kubectl's usual
// connection flags (--kubeconfig, --context, -n/--namespace, ...).
type plugin struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	poll    time.Duration
	// blockedGrace is how long a wait goes on while the object is blocked
	// for a cause that may clear by itself (a ReportStore not checked yet);
	// a cause only a person can fix ends the wait at once.
	blockedGrace time.Duration
}

// client returns a client for mailtrace's kinds and the namespace to use.
func (p *plugin) client() (client.Client, string, error) {
	cfg, err := p.flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := p.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: NewScheme()})
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// NewScheme is the scheme of the plugin's client: Kubernetes' kinds and mailtrace's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// Main runs kubectl-mailtrace with args and returns its exit code.
func Main(args []string) int {
	cmd := NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// NewCommand is `kubectl mailtrace`: message traces from kubectl, as
// an Exchange admin uses Get-MessageTraceV2.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	p := &plugin{flags: genericclioptions.NewConfigFlags(true), streams: streams, poll: 500 * time.Millisecond, blockedGrace: 15 * time.Second}
	cmd := &cobra.Command{
		Use:   "kubectl-mailtrace",
		Short: "Trace mail from kubectl: run MessageTraces, read their rows, a message's details, download reports",
		Long: `kubectl mailtrace creates and reads mailtrace.io objects in the current
namespace (or -n): every action is an ordinary Kubernetes request, so
your kubectl permissions decide what you may do.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mailtrace"},
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	p.flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(p.runCommand(), p.getCommand(), p.listCommand(), p.detailsCommand(), p.downloadCommand(), p.uiCommand())
	return cmd
}

// runFlags are the trace filters (shared with mailtrace query) and what
// only a MessageTrace has.
type runFlags struct {
	filter       filterflags.Flags
	limit        int32
	reportStore  string
	reportAlways bool
	reportType   string
	gzip         bool
	webhook      string
	webhookSign  string
	emails       []string
	ttl          time.Duration
	name         string
	timeout      time.Duration
	output       string
	autosave     bool
	continueFrom string
}

func (p *plugin) runCommand() *cobra.Command { return p.runCommandWith(&runFlags{}) }

func (p *plugin) runCommandWith(f *runFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Create a MessageTrace from flags, wait for it and print its rows",
		Example: `  kubectl mailtrace run --sender '*@example.com' --status Failed --since 7d
  kubectl mailtrace run --recipient bob@example.org --subject invoice -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := f.spec()
			if err != nil {
				return err
			}
			if err := checkOutput(f.output); err != nil {
				return err
			}
			loc, err := f.filter.Location()
			if err != nil {
				return err
			}
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			if f.continueFrom != "" {
				if spec, err = f.continued(cmd, c, ns, spec); err != nil {
					return err
				}
			}
			mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: f.name}, Spec: spec}
			if f.name == "" {
				mt.GenerateName = "trace-"
			}
			if f.autosave {
				p.autosave(cmd.Context(), c, mt)
			}
			mt, err = p.createAndWait(cmd.Context(), c, mt, f.timeout)
			if err != nil {
				return err
			}
			return p.printTrace(mt, f.output, loc)
		},
	}
	fl := cmd.Flags()
	f.filter.Register(cmd)
	fl.Int32Var(&f.limit, "limit", 0, "most rows in status (default 500, at most 1000)")
	fl.StringVar(&f.reportStore, "report-store", "", "ReportStore of the namespace for the CSV report")
	fl.BoolVar(&f.reportAlways, "report", false, "always make a CSV report (download it with kubectl mailtrace download)")
	fl.StringVar(&f.reportType, "report-type", "", "CSV report type: Summary (default, a row per message and recipient) or Detailed (with each row's events)")
	fl.BoolVar(&f.gzip, "gzip", false, "gzip the CSV report (.csv.gz)")
	fl.StringVar(&f.webhook, "notify-webhook", "", "URL told of the outcome by an HTTP POST (http or https)")
	fl.StringVar(&f.webhookSign, "notify-webhook-secret", "", "Secret of the namespace holding the webhook's HMAC key, as NAME or NAME/KEY (key default \"secret\")")
	fl.StringSliceVar(&f.emails, "notify-email", nil, "address emailed the outcome; repeatable or comma-separated (at most 20)")
	fl.DurationVar(&f.ttl, "ttl", 0, "delete the MessageTrace this long after it finishes (default: kept until deleted)")
	fl.StringVar(&f.name, "name", "", "name of the MessageTrace (default: generated, trace-xxxxx)")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long to wait for the answer")
	fl.StringVarP(&f.output, "output", "o", "", "output: table (default), wide, yaml or json")
	fl.BoolVar(&f.autosave, "autosave", true, "keep the trace among your last 10 autosaved queries of the namespace (labelled "+v1alpha1.LabelAutosave+", "+v1alpha1.AnnotationCreatedBy+" your user name); older ones of yours are deleted")
	fl.StringVar(&f.continueFrom, "continue-from", "", "the next page of rows of this earlier MessageTrace (its status.continue), with its filters and range; no filter flags")
	return cmd
}

// continued is the spec of the page after the earlier trace's rows: its
// filters and its continue token (which carries the range).
func (f *runFlags) continued(cmd *cobra.Command, c client.Client, ns string, own v1alpha1.MessageTraceSpec) (v1alpha1.MessageTraceSpec, error) {
	for _, n := range filterflags.FlagNames {
		if cmd.Flags().Changed(n) {
			return v1alpha1.MessageTraceSpec{}, fmt.Errorf("--continue-from takes the filters of MessageTrace %s: leave out --%s", f.continueFrom, n)
		}
	}
	prev := &v1alpha1.MessageTrace{}
	if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: f.continueFrom}, prev); err != nil {
		return v1alpha1.MessageTraceSpec{}, err
	}
	if prev.Status.Continue == "" {
		return v1alpha1.MessageTraceSpec{}, fmt.Errorf("MessageTrace %s has no more rows to page to (status.continue is empty)", prev.Name)
	}
	spec := *prev.Spec.DeepCopy()
	spec.StartTime, spec.EndTime, spec.Window, spec.Details = nil, nil, nil, nil
	// This run's own flags: its limit (else the earlier one's), report,
	// notifications and TTL.
	spec.Report, spec.Notify, spec.TTLSecondsAfterFinished = own.Report, own.Notify, own.TTLSecondsAfterFinished
	if own.ResultLimit != 0 {
		spec.ResultLimit = own.ResultLimit
	}
	spec.Continue = prev.Status.Continue
	return spec, nil
}

// WhoAmI is the user name the API server knows the client by (a
// SelfSubjectReview, which every authenticated user may create): what the
// admission policy compares mailtrace.io/created-by with.
func WhoAmI(ctx context.Context, c client.Client) (string, error) {
	r := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil {
		return "", err
	}
	if r.Status.UserInfo.Username == "" {
		return "", errors.New("the API server did not say who you are")
	}
	return r.Status.UserInfo.Username, nil
}

// autosave marks mt as an autosaved query of the user; when the API server
// cannot say who that is, the trace is created without (with a warning).
func (p *plugin) autosave(ctx context.Context, c client.Client, mt *v1alpha1.MessageTrace) {
	user, err := WhoAmI(ctx, c)
	if err != nil {
		fmt.Fprintf(p.streams.ErrOut, "warning: the trace is not autosaved: who you are is unknown (%v)\n", err)
		return
	}
	mt.MarkAutosaved(user)
}

// spec builds the MessageTrace spec of the flags: the filters are read by
// the same parsers as `mailtrace query`'s, so both commands accept the same
// spellings (comma lists or repeated flags, case-insensitive names, plain dates).
func (f *runFlags) spec() (v1alpha1.MessageTraceSpec, error) {
	s, err := f.filter.Spec()
	if err != nil {
		return s, err
	}
	s.ResultLimit = f.limit
	if err := f.report(&s); err != nil {
		return s, err
	}
	if err := f.notify(&s); err != nil {
		return s, err
	}
	switch {
	case f.ttl < 0:
		return s, fmt.Errorf("--ttl: %s is negative", f.ttl)
	case f.ttl > 0:
		secs := int32(min(f.ttl.Round(time.Second), time.Duration(math.MaxInt32)*time.Second) / time.Second)
		s.TTLSecondsAfterFinished = &secs
	}
	return s, nil
}

// report sets the spec's report from --report, --report-store,
// --report-type and --gzip: any of them sets the report's settings; only
// --report makes a report of a range of 10 days or less.
func (f *runFlags) report(s *v1alpha1.MessageTraceSpec) error {
	var typ v1alpha1.ReportType
	switch strings.ToLower(f.reportType) {
	case "":
	case "summary":
		typ = v1alpha1.ReportSummary
	case "detailed":
		typ = v1alpha1.ReportDetailed
	default:
		return fmt.Errorf("--report-type: %q is not Summary or Detailed", f.reportType)
	}
	if f.reportStore != "" || f.reportAlways || typ != "" || f.gzip {
		s.Report = &v1alpha1.ReportSpec{StoreName: f.reportStore, Always: f.reportAlways, Type: typ, Gzip: f.gzip}
	}
	return nil
}

// notify sets the spec's notifications from --notify-webhook,
// --notify-webhook-secret and --notify-email (the API server checks the
// URL and the addresses).
func (f *runFlags) notify(s *v1alpha1.MessageTraceSpec) error {
	if f.webhookSign != "" && f.webhook == "" {
		return fmt.Errorf("--notify-webhook-secret needs --notify-webhook")
	}
	if f.webhook == "" && len(f.emails) == 0 {
		return nil
	}
	n := &v1alpha1.NotifySpec{}
	if f.webhook != "" {
		n.Webhook = &v1alpha1.WebhookNotification{URL: f.webhook}
		if f.webhookSign != "" {
			name, key, _ := strings.Cut(f.webhookSign, "/")
			if name == "" {
				return fmt.Errorf("--notify-webhook-secret: %q names no Secret; use NAME or NAME/KEY", f.webhookSign)
			}
			n.Webhook.SecretRef = &v1alpha1.SecretKeyRef{Name: name, Key: key}
		}
	}
	for _, e := range f.emails {
		if e = strings.TrimSpace(e); e != "" {
			n.Email = cmp.Or(n.Email, &v1alpha1.EmailNotification{})
			n.Email.To = append(n.Email.To, v1alpha1.EmailAddress(e))
		}
	}
	s.Notify = n
	return nil
}

func checkOutput(o string) error {
	switch o {
	case "", "table", "wide", "yaml", "json":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table, wide, yaml or json", o)
}

// createAndWait creates mt (the API server validates it) and waits until it
// has finished, or cannot go on until someone acts.
func (p *plugin) createAndWait(ctx context.Context, c client.Client, mt *v1alpha1.MessageTrace, timeout time.Duration) (*v1alpha1.MessageTrace, error) {
	if err := c.Create(ctx, mt); err != nil {
		return nil, fmt.Errorf("creating the MessageTrace: %w", err)
	}
	fmt.Fprintf(p.streams.ErrOut, "messagetrace.mailtrace.io/%s created\n", mt.Name)
	return p.waitTrace(ctx, c, client.ObjectKeyFromObject(mt), timeout)
}

// waitTrace waits until the trace has finished: its answer, or an error
// saying why it failed, why it cannot go on (a blocked reason, such as
// NoDefaultReportStore), or where it stood at the timeout.
func (p *plugin) waitTrace(ctx context.Context, c client.Client, key client.ObjectKey, timeout time.Duration) (*v1alpha1.MessageTrace, error) {
	var blocked blockWatch
	got, err := waitFor(ctx, p.poll, timeout, func(ctx context.Context) (*v1alpha1.MessageTrace, bool, error) {
		cur := &v1alpha1.MessageTrace{}
		if err := c.Get(ctx, key, cur); err != nil {
			return nil, false, err
		}
		if cur.IsFinished() {
			return cur, true, nil
		}
		if cond, mayClear := cur.Blocked(); blocked.stop(cond, mayClear, p.blockedGrace) {
			return cur, false, stopWaiting{fmt.Errorf("MessageTrace %s cannot finish: %s: %s (it waits until that is fixed: kubectl mailtrace get %s)", key.Name, cond.Reason, cond.Message, key.Name)}
		}
		return cur, false, nil
	})
	var stop stopWaiting
	switch {
	case errors.As(err, &stop):
		return got, stop.err
	case err != nil:
		return got, fmt.Errorf("waiting for MessageTrace %s: %w%s (it keeps running: kubectl mailtrace get %s)", key.Name, err, traceState(got), key.Name)
	}
	if c := got.Condition(v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		return got, fmt.Errorf("MessageTrace %s failed: %s: %s", got.Name, c.Reason, c.Message)
	}
	return got, nil
}

// traceState says where a trace stood: "; it is Running (Exporting: ...)".
func traceState(mt *v1alpha1.MessageTrace) string {
	if mt == nil {
		return ""
	}
	st := "; it is " + string(mt.Status.Phase)
	if mt.Status.Phase == "" {
		st = "; it has not been picked up by the manager (is it running?)"
	}
	if c := mt.Condition(v1alpha1.ConditionSucceeded); c != nil {
		st += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
	}
	return st
}

// blockWatch decides when a wait on a blocked object stops: at once for a
// cause only a person can fix, after grace for one that may clear by itself.
type blockWatch struct{ since time.Time }

func (b *blockWatch) stop(c *metav1.Condition, mayClear bool, grace time.Duration) bool {
	if c == nil {
		b.since = time.Time{}
		return false
	}
	if b.since.IsZero() {
		b.since = time.Now()
	}
	return !mayClear || time.Since(b.since) >= grace
}

// stopWaiting, returned by waitFor's get, ends the wait at once with err.
type stopWaiting struct{ err error }

func (s stopWaiting) Error() string { return s.err.Error() }

// requestTimeout bounds each request of a wait.
const requestTimeout = 30 * time.Second

// waitFor polls get until done, or until get says to stop (stopWaiting, or
// an answer waiting will not change: not found, forbidden), or timeout. Each
// get has a context of its own, not cut by the timeout, so that a timeout
// reports where the object stood (the last value got) rather than the error
// of a request the deadline interrupted (such as the client's rate limiter).
func waitFor[T any](ctx context.Context, poll, timeout time.Duration, get func(context.Context) (T, bool, error)) (T, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var last T
	var lastErr error
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		v, done, err := get(rctx)
		cancel()
		var stop stopWaiting
		switch {
		case errors.As(err, &stop):
			return v, err
		case err == nil && done:
			return v, nil
		case err == nil:
			last, lastErr = v, nil
		case ctx.Err() != nil:
			return last, ctx.Err()
		case apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
			return last, err
		default:
			lastErr = err // the API server may be back at the next poll
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-deadline.C:
			if lastErr != nil {
				return last, fmt.Errorf("not done after %s, and the last request failed: %w", timeout, lastErr)
			}
			return last, fmt.Errorf("not done after %s", timeout)
		case <-tick.C:
		}
	}
}

// printObject prints obj as yaml or json (kubectl's -o).
func printObject(w io.Writer, obj any, format string) error {
	if format == "json" {
		b, err := json.MarshalIndent(obj, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// printTrace prints a trace's rows like Get-MessageTraceV2 (or the object).
func (p *plugin) printTrace(mt *v1alpha1.MessageTrace, format string, loc *time.Location) error {
	if format == "yaml" || format == "json" {
		mt.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("MessageTrace"))
		return printObject(p.streams.Out, mt, format)
	}
	st := &mt.Status
	if len(st.Rows) == 0 {
		fmt.Fprintf(p.streams.ErrOut, "No messages match (MessageTrace %s, %s).\n", mt.Name, rangeOf(mt, loc))
		return nil
	}
	PrintRowsIn(p.streams.Out, st.Rows, format == "wide", loc)
	msg := fmt.Sprintf("%d of %d matches shown (MessageTrace %s, %s)", len(st.Rows), st.TotalMatches, mt.Name, rangeOf(mt, loc))
	if st.Report != nil && st.Report.Phase == v1alpha1.ReportPhaseCompleted {
		msg += fmt.Sprintf("; the CSV report has %d rows: kubectl mailtrace download %s", st.Report.Rows, mt.Name)
	}
	fmt.Fprintln(p.streams.ErrOut, msg+".")
	if st.Continue != "" {
		fmt.Fprintf(p.streams.ErrOut, "More rows follow: kubectl mailtrace run --continue-from %s\n", mt.Name)
	}
	return nil
}

func rangeOf(mt *v1alpha1.MessageTrace, loc *time.Location) string {
	if tr := mt.Status.TimeRange; tr != nil {
		return fmt.Sprintf("%s from %s %s", tr.Duration, textable.FormatTime(tr.Start.Time, loc), textable.ZoneName(loc))
	}
	return "no range yet"
}

// PrintRows prints trace rows: the columns of Get-MessageTraceV2, and with
// wide the message trace ID (for details), sizes, IPs and direction; times
// in UTC.
func PrintRows(w io.Writer, rows []v1alpha1.TraceRow, wide bool) {
	PrintRowsIn(w, rows, wide, time.UTC)
}

// PrintRowsIn is PrintRows with times in loc.
func PrintRowsIn(w io.Writer, rows []v1alpha1.TraceRow, wide bool, loc *time.Location) {
	var t textable.Table
	if wide {
		t.Add(textable.InZone(textable.HeadPluginWide, loc)...)
	} else {
		t.Add(textable.InZone(textable.HeadPluginRows, loc)...)
	}
	for _, r := range rows {
		recv := textable.FormatTime(r.Received.Time, loc)
		if wide {
			t.Add(recv, r.Sender, textable.OrDash(r.Recipient), textable.Truncate(r.Subject, 60), string(r.Status), textable.HumanSize(r.Size),
				string(r.Direction), textable.OrDash(r.FromIP), textable.OrDash(r.ToIP), textable.OrDash(r.Folder), r.MessageTraceID, r.MessageID)
		} else {
			t.Add(recv, textable.Truncate(r.Sender, 40), textable.Truncate(textable.OrDash(r.Recipient), 40), textable.Truncate(r.Subject, 50), string(r.Status))
		}
	}
	_ = t.Print(w)
}

func (p *plugin) getCommand() *cobra.Command {
	var output, tz string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a MessageTrace's rows (or its details timeline)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			loc, err := filterflags.LoadLocation(tz)
			if err != nil {
				return err
			}
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			mt := &v1alpha1.MessageTrace{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, mt); err != nil {
				return err
			}
			if output != "yaml" && output != "json" {
				if !mt.IsFinished() {
					fmt.Fprintf(p.streams.ErrOut, "MessageTrace %s is %s.\n", mt.Name, textable.OrDash(string(mt.Status.Phase)))
				} else if c := mt.Condition(v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
					return fmt.Errorf("MessageTrace %s failed: %s: %s", mt.Name, c.Reason, c.Message)
				}
				if mt.Status.Details != nil {
					return PrintDetailsTimelineIn(p.streams.Out, p.streams.ErrOut, mt.Status.Details, loc)
				}
			}
			return p.printTrace(mt, output, loc)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output: table (default), wide, yaml or json")
	filterflags.AddTimeZoneFlag(cmd.Flags(), &tz)
	return cmd
}

func (p *plugin) listCommand() *cobra.Command {
	var all, mine bool
	var output, tz string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the namespace's MessageTraces: phase, range, matches",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "wide" {
				return fmt.Errorf("unknown output format %q: use wide (or nothing)", output)
			}
			loc, err := filterflags.LoadLocation(tz)
			if err != nil {
				return err
			}
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			var list v1alpha1.MessageTraceList
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			if mine {
				opts = append(opts, client.MatchingLabels{v1alpha1.LabelAutosave: "true"})
			}
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return err
			}
			if mine {
				user, err := WhoAmI(cmd.Context(), c)
				if err != nil {
					return fmt.Errorf("--mine: who you are is unknown: %w", err)
				}
				list.Items = MyAutosaved(list.Items, user)
			}
			if len(list.Items) == 0 {
				fmt.Fprintf(p.streams.ErrOut, "No MessageTraces in %s.\n", ns)
				return nil
			}
			printTraceTable(p.streams.Out, list.Items, listOptions{withNamespace: all, wide: output == "wide", loc: loc}, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the MessageTraces of every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output: table (default) or wide (with each range's start and end, and who created the trace)")
	filterflags.AddTimeZoneFlag(cmd.Flags(), &tz)
	cmd.Flags().BoolVar(&mine, "mine", false, "only your autosaved queries (the last 10 per namespace), newest first")
	return cmd
}

// MyAutosaved is user's autosaved queries among traces, newest first.
func MyAutosaved(traces []v1alpha1.MessageTrace, user string) []v1alpha1.MessageTrace {
	var out []v1alpha1.MessageTrace
	for _, mt := range traces {
		if mt.IsAutosavedBy(user) {
			out = append(out, mt)
		}
	}
	slices.SortStableFunc(out, func(a, b v1alpha1.MessageTrace) int {
		if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	return out
}

// printTraceList prints traces as kubectl get would, with the answer's size.
// listOptions say how list prints.
type listOptions struct {
	withNamespace, wide bool
	loc                 *time.Location
}

func printTraceTable(w io.Writer, items []v1alpha1.MessageTrace, o listOptions, now time.Time) {
	var t textable.Table
	head := append([]string(nil), textable.HeadPluginList...)
	if o.wide {
		head = append(head, textable.InZone(textable.HeadPluginListWide, o.loc)...)
	}
	if o.withNamespace {
		head = append([]string{"NAMESPACE"}, head...)
	}
	t.Add(head...)
	for _, mt := range items {
		st := &mt.Status
		rng, report, reason := "-", "-", "-"
		if st.TimeRange != nil {
			rng = st.TimeRange.Duration
		}
		if st.Report != nil {
			report = string(st.Report.Phase)
		}
		if c := mt.Condition(v1alpha1.ConditionSucceeded); c != nil {
			reason = c.Reason
		}
		matches := strconv.FormatInt(st.TotalMatches, 10)
		switch {
		case st.Details != nil:
			rng, matches = "details", fmt.Sprintf("%d events", st.Details.TotalEvents)
		case mt.Spec.Details != nil: // not answered (yet), or failed (NotARecipient)
			rng, matches = "details", "-"
		}
		cells := []string{mt.Name, textable.OrDash(string(st.Phase)), rng, matches, strconv.Itoa(int(st.ReturnedRows)), report, reason,
			textable.FormatAge(now.Sub(mt.CreationTimestamp.Time))}
		if o.wide {
			from, to := "-", "-"
			if st.TimeRange != nil && mt.Spec.Details == nil {
				from, to = textable.FormatTime(st.TimeRange.Start.Time, o.loc), textable.FormatTime(st.TimeRange.End.Time, o.loc)
			}
			cells = append(cells, from, to, textable.OrDash(mt.CreatedBy()))
		}
		if o.withNamespace {
			cells = append([]string{mt.Namespace}, cells...)
		}
		t.Add(cells...)
	}
	_ = t.Print(w)
}

func (p *plugin) detailsCommand() *cobra.Command {
	var traceID, recipient, output, tz string
	var events []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "details",
		Short: "Print one message's event timeline, for one recipient or all (like Get-MessageTraceDetailV2)",
		Example: `  kubectl mailtrace details --trace-id 6ac2279ac0af5eb73a36 --recipient info@partner.example
  kubectl mailtrace details --trace-id 6ac2279ac0af5eb73a36 --event Defer,Fail --time-zone Asia/Tokyo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if traceID == "" {
				return errors.New("--trace-id is required (kubectl mailtrace run -o wide shows message trace IDs)")
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			loc, err := filterflags.LoadLocation(tz)
			if err != nil {
				return err
			}
			types, err := filterflags.ParseEventTypes(events)
			if err != nil {
				return err
			}
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			d := &v1alpha1.DetailsSpec{MessageTraceID: traceID, Recipient: recipient}
			for _, e := range types {
				d.Events = append(d.Events, v1alpha1.EventType(e))
			}
			mt := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "details-"},
				Spec: v1alpha1.MessageTraceSpec{Details: d}}
			mt, err = p.createAndWait(cmd.Context(), c, mt, timeout)
			if err != nil {
				return err
			}
			if output == "yaml" || output == "json" {
				mt.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("MessageTrace"))
				return printObject(p.streams.Out, mt, output)
			}
			if mt.Status.Details == nil {
				return fmt.Errorf("MessageTrace %s finished without details (is the manager older than this plugin?)", mt.Name)
			}
			return PrintDetailsTimelineIn(p.streams.Out, p.streams.ErrOut, mt.Status.Details, loc)
		},
	}
	cmd.Flags().StringVar(&traceID, "trace-id", "", "message trace ID of the message (required)")
	cmd.Flags().StringVar(&recipient, "recipient", "", "recipient address (default: every recipient, each event naming its own)")
	cmd.Flags().StringSliceVar(&events, "event", nil, filterflags.EventUsage())
	filterflags.AddTimeZoneFlag(cmd.Flags(), &tz)
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the answer")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output: table (default), yaml or json")
	return cmd
}

// PrintDetailsTimeline prints a details timeline: time, event, source, DSN and what
// happened (detail, relay, the server's response); times in UTC.
func PrintDetailsTimeline(w, errw io.Writer, d *v1alpha1.MessageDetailsStatus) error {
	return PrintDetailsTimelineIn(w, errw, d, time.UTC)
}

// PrintDetailsTimelineIn is PrintDetailsTimeline with times in loc. A
// timeline of every recipient (no recipient named) has a RECIPIENT column.
func PrintDetailsTimelineIn(w, errw io.Writer, d *v1alpha1.MessageDetailsStatus, loc *time.Location) error {
	if len(d.Events) == 0 {
		who := " for " + d.Recipient
		if d.Recipient == "" {
			who = ""
		}
		fmt.Fprintf(errw, "No events of message %s%s (unknown, pruned, filtered out, or not visible to this namespace).\n", d.MessageTraceID, who)
		return nil
	}
	all := d.Recipient == ""
	var t textable.Table
	if all {
		t.Add(textable.InZone(textable.HeadPluginDetailAll, loc)...)
	} else {
		t.Add(textable.InZone(textable.HeadPluginDetail, loc)...)
	}
	for _, e := range d.Events {
		cells := []string{textable.FormatTime(e.Time.Time, loc), e.Event, textable.OrDash(e.Source), textable.OrDash(e.DSN), textable.EventDetail(e.Detail, e.Relay, e.SMTPResponse, e.ExpandedFrom)}
		if all {
			cells = slices.Insert(cells, 2, textable.OrDash(e.Recipient))
		}
		t.Add(cells...)
	}
	if err := t.Print(w); err != nil {
		return err
	}
	if d.Truncated {
		fmt.Fprintf(errw, "The latest %d of %d events shown.\n", len(d.Events), d.TotalEvents)
	}
	return nil
}

func (p *plugin) downloadCommand() *cobra.Command {
	var file string
	var ttl, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "download NAME",
		Short: "Download a MessageTrace's CSV report to a local file (through a short-lived DownloadRequest)",
		Long: `download creates a DownloadRequest for the trace, waits for the manager to
answer it with a presigned URL, fetches the report into a file, checks its
SHA-256 against the trace's status.report.sha256 and deletes the request.
Your permission to create DownloadRequests in the namespace decides.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			return p.download(cmd.Context(), c, ns, args[0], file, ttl, timeout)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file to write (default NAME.csv, or NAME.csv.gz for a gzip report)")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Minute, "validity of the download URL (at most 1h)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the report and the URL")
	return cmd
}

func (p *plugin) download(ctx context.Context, c client.Client, ns, name, file string, ttl, timeout time.Duration) error {
	dr := &v1alpha1.DownloadRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: name + "-"},
		Spec: v1alpha1.DownloadRequestSpec{MessageTraceName: name, TTL: &metav1.Duration{Duration: ttl}}}
	if len(dr.GenerateName) > 200 {
		dr.GenerateName = "download-"
	}
	if err := c.Create(ctx, dr); err != nil {
		return fmt.Errorf("creating a DownloadRequest: %w", err)
	}
	defer func() { _ = c.Delete(context.Background(), dr) }() // the URL is no longer needed
	var blocked blockWatch
	got, err := waitFor(ctx, p.poll, timeout, func(ctx context.Context) (*v1alpha1.DownloadRequest, bool, error) {
		cur := &v1alpha1.DownloadRequest{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(dr), cur); err != nil {
			return nil, false, err
		}
		switch cur.Status.Phase {
		case v1alpha1.DownloadReady, v1alpha1.DownloadFailed, v1alpha1.DownloadExpired:
			return cur, true, nil
		}
		cond, mayClear := cur.Blocked()
		if cond == nil {
			// Waiting for the report: the trace may be the one blocked.
			if rc := cur.Condition(v1alpha1.ConditionReady); rc != nil && v1alpha1.Reason(rc.Reason) == v1alpha1.ReasonReportPending {
				mt := &v1alpha1.MessageTrace{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, mt); err == nil {
					cond, mayClear = mt.Blocked()
				}
			}
		}
		if blocked.stop(cond, mayClear, p.blockedGrace) {
			return cur, false, stopWaiting{fmt.Errorf("cannot download the report of %s yet: %s: %s (kubectl mailtrace get %s)", name, cond.Reason, cond.Message, name)}
		}
		return cur, false, nil
	})
	var stop stopWaiting
	switch {
	case errors.As(err, &stop):
		return stop.err
	case err != nil:
		why := ""
		if got != nil {
			if c := got.Condition(v1alpha1.ConditionReady); c != nil {
				why = fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
			}
		}
		return fmt.Errorf("waiting for DownloadRequest %s: %w%s", dr.Name, err, why)
	}
	if got.Status.Phase != v1alpha1.DownloadReady {
		if c := got.Condition(v1alpha1.ConditionReady); c != nil {
			return fmt.Errorf("cannot download the report of %s: %s: %s", name, c.Reason, c.Message)
		}
		return fmt.Errorf("cannot download the report of %s: DownloadRequest %s is %s", name, got.Name, got.Status.Phase)
	}
	rep := got.Status.Report
	if rep == nil {
		rep = &v1alpha1.DownloadedReport{}
	}
	if file == "" {
		file = name + ".csv"
		if rep.ContentEncoding == "gzip" {
			file += ".gz"
		}
	}
	n, sum, err := fetch(ctx, got.Status.DownloadURL, file, rep.SHA256)
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(file)
	check := "(matches status.report.sha256)"
	if rep.SHA256 == "" {
		check = "(the report records no sha256 to check)"
	}
	fmt.Fprintf(p.streams.Out, "%s\t%d rows\t%d bytes\tsha256 %s %s\n", abs, rep.Rows, n, sum, check)
	return nil
}

// fetch GETs url into file and returns its size and SHA-256. The bytes are
// the object's as stored: a gzip report (Content-Encoding gzip) stays
// compressed, as its checksum was computed, rather than being inflated by
// Go's transport. They go to a temporary file, renamed to file only when the
// SHA-256 matches want (when want is set), so a bad download never takes
// the name of a good report.
func fetch(ctx context.Context, url, file, want string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true // no transparent gunzip
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("downloading the report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, "", fmt.Errorf("downloading the report: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return 0, "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, "", fmt.Errorf("downloading the report: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return n, sum, fmt.Errorf("the download (%d bytes) has sha256 %s, not the report's %s; %s was not written", n, sum, want, file)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return n, "", err
	}
	return n, sum, nil
}
