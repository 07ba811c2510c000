package plugin

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/filterflags"
)

// runSpec parses args as `kubectl mailtrace run` does and returns the spec.
func runSpec(t *testing.T, args ...string) (v1alpha1.MessageTraceSpec, error) {
	t.Helper()
	p := &plugin{streams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}}
	var f runFlags
	cmd := p.runCommandWith(&f)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return f.spec()
}

// The plugin's run flags are read by the same parsers as `mailtrace query`.
func TestRunFlagsShareQueryParsing(t *testing.T) {
	s, err := runSpec(t, "--status", "failed,Pending", "--direction", "outbound", "--start", "2026-03-01",
		"--end", "2026-03-02T12:00:00Z", "--subject", "invoice", "--subject-match", "startswith",
		"--sender", "a@example.com,*@partner.example", "--sender", "c@example.com",
		"--recipient", "x@*,y@example.org", "--original-client-ip", " 203.0.113.0/24", "--limit", "20", "--report")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.DeliveryStatuses; len(got) != 2 || got[0] != "Failed" || got[1] != "Pending" {
		t.Errorf("statuses = %v", got)
	}
	if s.Direction != v1alpha1.Direction("Outbound") {
		t.Errorf("direction = %q", s.Direction)
	}
	if want := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC); !s.StartTime.Time.Equal(want) {
		t.Errorf("start = %v, want %v", s.StartTime, want)
	}
	if s.Subject == nil || s.Subject.Match != "StartsWith" {
		t.Errorf("subject = %+v", s.Subject)
	}
	if want := []v1alpha1.AddressPattern{"a@example.com", "*@partner.example", "c@example.com"}; !reflect.DeepEqual(s.SenderAddresses, want) {
		t.Errorf("senders = %v, want %v", s.SenderAddresses, want)
	}
	if want := []v1alpha1.AddressPattern{"x@*", "y@example.org"}; !reflect.DeepEqual(s.RecipientAddresses, want) {
		t.Errorf("recipients = %v, want %v", s.RecipientAddresses, want)
	}
	if s.OriginalClientIP != "203.0.113.0/24" || s.ResultLimit != 20 || s.Report == nil || !s.Report.Always {
		t.Errorf("original client IP %q, limit %d, report %+v", s.OriginalClientIP, s.ResultLimit, s.Report)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--status", "Bounced"}, `--status: "Bounced" is not a delivery status`},
		{[]string{"--direction", "sideways"}, `--direction: "sideways" is not Inbound`},
		{[]string{"--start", "yesterday"}, `--start: "yesterday" is not an RFC 3339 time`},
		{[]string{"--subject", "x", "--subject-match", "Regex"}, `--subject-match: "Regex" is not Contains`},
		{[]string{"--subject-match", "Contains"}, `--subject-match needs --subject`},
		{[]string{"--end", "2026-03-01"}, `--end needs --start`},
		{[]string{"--since", "1h", "--start", "2026-03-01"}, `--since cannot be combined`},
		{[]string{"--original-client-ip", "10.0.0.300"}, `--original-client-ip: "10.0.0.300" is not an IP address or CIDR`},
	} {
		if _, err := runSpec(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("spec(%q) error = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// What only a MessageTrace has (report type, gzip, notifications, TTL) has
// flags too, checked before anything is created.
func TestRunReportNotifyAndTTLFlags(t *testing.T) {
	s, err := runSpec(t, "--report-type", "detailed", "--gzip", "--report-store", "reports",
		"--notify-webhook", "https://hooks.example.com/x", "--notify-webhook-secret", "hook/hmac",
		"--notify-email", "ops@example.com,noc@example.com", "--notify-email", "me@example.com", "--ttl", "2h")
	if err != nil {
		t.Fatal(err)
	}
	if want := (&v1alpha1.ReportSpec{StoreName: "reports", Type: v1alpha1.ReportDetailed, Gzip: true}); !reflect.DeepEqual(s.Report, want) {
		t.Errorf("report = %+v, want %+v", s.Report, want)
	}
	if n := s.Notify; n == nil || n.Webhook == nil || n.Webhook.URL != "https://hooks.example.com/x" ||
		n.Webhook.SecretRef == nil || *n.Webhook.SecretRef != (v1alpha1.SecretKeyRef{Name: "hook", Key: "hmac"}) ||
		n.Email == nil || !reflect.DeepEqual(n.Email.To, []v1alpha1.EmailAddress{"ops@example.com", "noc@example.com", "me@example.com"}) {
		t.Errorf("notify = %+v", s.Notify)
	}
	if s.TTLSecondsAfterFinished == nil || *s.TTLSecondsAfterFinished != 7200 {
		t.Errorf("ttl = %v, want 7200", s.TTLSecondsAfterFinished)
	}
	// Without those flags the spec has none of it (the CRD's defaults apply).
	s, err = runSpec(t, "--since", "1d")
	if err != nil || s.Report != nil || s.Notify != nil || s.TTLSecondsAfterFinished != nil {
		t.Errorf("plain run: report %+v notify %+v ttl %v err %v", s.Report, s.Notify, s.TTLSecondsAfterFinished, err)
	}
	s, err = runSpec(t, "--notify-webhook", "https://h.example/", "--notify-webhook-secret", "hook")
	if err != nil || s.Notify.Webhook.SecretRef.Key != "" || s.Notify.Webhook.SecretRef.Name != "hook" {
		t.Errorf("secret without key: %+v %v", s.Notify.Webhook.SecretRef, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--report-type", "Full"}, `--report-type: "Full" is not Summary or Detailed`},
		{[]string{"--notify-webhook-secret", "hook"}, `--notify-webhook-secret needs --notify-webhook`},
		{[]string{"--notify-webhook", "https://h/", "--notify-webhook-secret", "/k"}, `names no Secret`},
		{[]string{"--ttl", "-5m"}, `--ttl: -5m0s is negative`},
	} {
		if _, err := runSpec(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("spec(%q) error = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// `kubectl mailtrace run` has every filter flag `mailtrace query` has, with
// the same help text: both come from filterflags.
func TestRunHasEveryFilterFlag(t *testing.T) {
	var want filterflags.Flags
	ref := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	run, _, err := ref.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	shared := &cobra.Command{}
	want.Register(shared)
	shared.Flags().VisitAll(func(fl *pflag.Flag) {
		got := run.Flags().Lookup(fl.Name)
		if got == nil || got.Usage != fl.Usage {
			t.Errorf("run --%s: %+v, want the shared flag (%q)", fl.Name, got, fl.Usage)
		}
	})
}
