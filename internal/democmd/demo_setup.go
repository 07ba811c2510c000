package democmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/minio/minio-go/v7"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/demo"
)

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// postLines sends the log lines to the ingester as a log shipper would:
// batches of raw lines, POST /ingest with the bearer token. Each answer
// (204) means the batch's events are stored.
func postLines(ctx context.Context, out io.Writer, url, token string, lines []string) error {
	fmt.Fprintf(out, "sending %d Postfix log lines (%d days of example.com's mail) to %s:", len(lines), demo.LogDays, url)
	hc := &http.Client{Timeout: time.Minute}
	next := 10
	for i := 0; i < len(lines); i += demoBatch {
		body := strings.Join(lines[i:min(i+demoBatch, len(lines))], "\n") + "\n"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			fmt.Fprintln(out)
			return fmt.Errorf("ingest: %w", err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			fmt.Fprintln(out)
			return fmt.Errorf("ingest: %s: %s", resp.Status, bytes.TrimSpace(msg))
		}
		for pct := (i + demoBatch) * 100 / len(lines); pct >= next && next <= 100; next += 10 {
			fmt.Fprintf(out, " %d%%", next)
		}
	}
	fmt.Fprintln(out, " stored")
	return nil
}

// createReportStore creates the Secret and ReportStore of
// config/samples/reports, pointed at the demo's MinIO.
func createReportStore(ctx context.Context, c client.Client, ns string, s3 *demo.MinIO) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: demoStore + "-credentials"},
		StringData: map[string]string{"accessKeyID": s3.AccessKey, "secretAccessKey": s3.SecretKey},
	}
	if err := c.Create(ctx, sec); err != nil {
		return fmt.Errorf("create Secret %s: %w", sec.Name, err)
	}
	rs := &v1alpha1.ReportStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: demoStore},
		Spec: v1alpha1.ReportStoreSpec{
			Endpoint: "http://" + s3.Endpoint, Bucket: demoBucket, Prefix: "mailtrace",
			CredentialsSecretRef: v1alpha1.SecretReference{Name: sec.Name},
		},
	}
	if err := c.Create(ctx, rs); err != nil {
		return fmt.Errorf("create ReportStore %s: %w", rs.Name, err)
	}
	return nil
}

// waitReportStore waits until the manager found the ReportStore Available.
func waitReportStore(ctx context.Context, c client.Client, ns string, timeout time.Duration, mdone chan error) error {
	return poll(ctx, timeout, mdone, func() (bool, string, error) {
		var rs v1alpha1.ReportStore
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: demoStore}, &rs); err != nil {
			return false, "", err
		}
		cond := meta.FindStatusCondition(rs.Status.Conditions, string(v1alpha1.ConditionAvailable))
		if cond != nil && cond.Status == metav1.ConditionTrue {
			return true, "", nil
		}
		if cond == nil {
			return false, "ReportStore " + demoStore + " not checked yet", nil
		}
		return false, fmt.Sprintf("ReportStore %s not available: %s: %s", demoStore, cond.Reason, cond.Message), nil
	})
}

// reportTrace is config/samples/reports/messagetrace_30_days_report.yaml.
func reportTrace(ns string) *v1alpha1.MessageTrace {
	return &v1alpha1.MessageTrace{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: demoReportTrace},
		Spec: v1alpha1.MessageTraceSpec{
			RecipientAddresses:      []v1alpha1.AddressPattern{"*@partner.example"},
			Window:                  &metav1.Duration{Duration: 720 * time.Hour},
			TTLSecondsAfterFinished: ptr.To[int32](604800),
			Report: &v1alpha1.ReportSpec{StoreName: demoStore, Type: v1alpha1.ReportSummary, Gzip: true,
				DeletionPolicy: v1alpha1.ReportDelete},
		},
	}
}

// demoScheduleObject is config/samples/default-queries/schedules/
// schedule_failed_weekly.yaml without the email (the demo has no SMTP
// relay), with the run-now annotation.
func demoScheduleObject(ns string) *v1alpha1.MessageTraceSchedule {
	return &v1alpha1.MessageTraceSchedule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: demoSchedule,
			Annotations: map[string]string{v1alpha1.AnnotationRunNow: "demo"}},
		Spec: v1alpha1.MessageTraceScheduleSpec{
			Schedule: "0 6 * * 1", TimeZone: "UTC", Window: metav1.Duration{Duration: 168 * time.Hour},
			SuccessfulRunsHistoryLimit: ptr.To[int32](13),
			Template: v1alpha1.MessageTraceTemplate{
				Metadata: v1alpha1.TemplateMetadata{Labels: map[string]string{"mailtrace.io/query": "failed-last-7-days"}},
				Spec:     v1alpha1.MessageTraceSpec{DeliveryStatuses: []v1alpha1.DeliveryStatus{"Failed"}},
			},
		},
	}
}

// waitForRun waits for the run the run-now annotation starts.
func waitForRun(ctx context.Context, c client.Client, s *v1alpha1.MessageTraceSchedule, timeout time.Duration, mdone chan error) (*v1alpha1.MessageTrace, error) {
	var run *v1alpha1.MessageTrace
	err := poll(ctx, timeout, mdone, func() (bool, string, error) {
		var list v1alpha1.MessageTraceList
		if err := c.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingLabels{v1alpha1.LabelSchedule: s.Name}); err != nil {
			return false, "", err
		}
		if len(list.Items) == 0 {
			return false, "no run of MessageTraceSchedule " + s.Name + " yet", nil
		}
		run = &list.Items[0]
		return true, "", nil
	})
	return run, err
}

// poll calls check until it is done, fails, the manager stops or timeout.
func poll(ctx context.Context, timeout time.Duration, mdone chan error, check func() (bool, string, error)) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why, err := check()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("interrupted: %w", parent.Err())
			}
			return fmt.Errorf("%s after %s (run with --verbose to see the manager's logs)", why, timeout)
		case err := <-mdone:
			mdone <- err
			return fmt.Errorf("the manager stopped: %v", err)
		case <-tick.C:
		}
	}
}

// printReport shows the report as status says it and as the bucket holds it.
func printReport(ctx context.Context, out io.Writer, s3 *demo.MinIO, mt *v1alpha1.MessageTrace) error {
	r := mt.Status.Report
	if r == nil {
		return fmt.Errorf("MessageTrace %s has no report", mt.Name)
	}
	fmt.Fprintf(out, "\nthe report of %s (kubectl get mt %s -o jsonpath='{.status.report}'):\n", mt.Name, mt.Name)
	fmt.Fprintf(out, "  phase %s, %d rows, %d bytes, sha256 %s\n", r.Phase, r.Rows, r.Bytes, r.SHA256)
	mc, err := s3.Client()
	if err != nil {
		return err
	}
	info, err := mc.StatObject(ctx, r.Bucket, r.Key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("the report s3://%s/%s: %w", r.Bucket, r.Key, err)
	}
	fmt.Fprintf(out, "\n$ aws s3 ls --endpoint-url http://%s s3://%s/ --recursive\n", s3.Endpoint, r.Bucket)
	fmt.Fprintf(out, "%s %10d %s\n", info.LastModified.UTC().Format("2006-01-02 15:04:05"), info.Size, info.Key)
	return nil
}

// detailsTrace asks for the event timeline of one row (Get-MessageTraceDetailV2).
func detailsTrace(ns string, r v1alpha1.TraceRow) *v1alpha1.MessageTrace {
	return &v1alpha1.MessageTrace{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "newest-failure-details"},
		Spec: v1alpha1.MessageTraceSpec{
			Details: &v1alpha1.DetailsSpec{MessageTraceID: r.MessageTraceID, Recipient: r.Recipient},
		},
	}
}
