package messagetrace

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/controllers/reportstore"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/storetest"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

// reportSeedRows is the size of the PostgreSQL store the report tests share:
// enough for a report of more than one 5 MiB part.
const reportSeedRows = 60_000

var (
	pgOnce  sync.Once
	pgStore store.Store
	pgErr   error
)

// seededPostgres returns a PostgreSQL store holding storetest.SeedBench's
// rows (90 days before storetest.BenchEnd), seeded once per test process.
func seededPostgres(t *testing.T) store.Store {
	t.Helper()
	dsn := ""
	pgOnce.Do(func() {
		dsn = pgtest.DSN(t)
		ctx := context.Background()
		var st *postgres.Store
		st, pgErr = postgres.Open(ctx, dsn, postgres.Options{})
		if pgErr != nil {
			return
		}
		pgErr = storetest.SeedBench(ctx, st, reportSeedRows)
		pgStore = st
	})
	if pgErr != nil {
		t.Fatalf("seeding PostgreSQL: %v", pgErr)
	}
	return pgStore
}

// reportOpts are fast options for tests: small pages and parts, quick
// progress and retries.
func reportOpts() Options {
	return Options{
		ProgressInterval: 200 * time.Millisecond, RetryBackoff: 500 * time.Millisecond, MaxRetryBackoff: 3 * time.Second,
		ReportPageSize: 500, PartSize: objectstore.MinPartSize, ObjectStoreMaxRetries: 1, MaxReportAttempts: 8,
		DeletionTimeout: 10 * time.Second,
	}
}

// reportManager is a manager running both controllers in one namespace.
type reportManager struct {
	r      *Reconciler
	cancel context.CancelFunc
	done   chan error
}

// stop stops the manager (as a restart or a lost leadership would) and waits for it.
func (m *reportManager) stop(t *testing.T) {
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	if err := <-m.done; err != nil {
		t.Errorf("manager: %v", err)
	}
}

// opCounts counts operations on the object stores the controllers open.
type opCounts struct{ uploads, checks atomic.Int64 }

// countingObjects counts the uploads and checks of an object store.
type countingObjects struct {
	objectstore.Store
	n *opCounts
}

func (c countingObjects) Upload(ctx context.Context, key string, r io.Reader, o objectstore.UploadOptions) (objectstore.UploadInfo, error) {
	c.n.uploads.Add(1)
	return c.Store.Upload(ctx, key, r, o)
}

func (c countingObjects) Check(ctx context.Context) error {
	c.n.checks.Add(1)
	return c.Store.Check(ctx)
}

func startReportManager(t *testing.T, env *kubetest.Env, ns string, st store.Store, opts Options, def *DefaultReportStore, counts *opCounts) *reportManager {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	newStore := func(cfg objectstore.Config) (objectstore.Store, error) {
		s, err := objectstore.New(cfg)
		if err != nil || counts == nil {
			return s, err
		}
		return countingObjects{s, counts}, nil
	}
	r := &Reconciler{Store: st, Clock: clock.RealClock{}, Options: opts, DefaultReportStore: def, NewObjectStore: newStore}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	rsr := &reportstore.Reconciler{NewObjectStore: newStore, Options: reportstore.Options{CheckInterval: time.Second, RetryInterval: time.Second}}
	if err := rsr.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &reportManager{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(ctx) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// createReportStore creates a Secret with the credentials and a ReportStore
// on the test MinIO server with a fresh bucket.
func createReportStore(t *testing.T, c client.Client, ns, name, bucket, accessKey, secretKey string) *v1alpha1.ReportStore {
	t.Helper()
	ep, _, _ := miniotest.Server(t)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-credentials"},
		StringData: map[string]string{v1alpha1.AccessKeyIDKey: accessKey, v1alpha1.SecretAccessKeyKey: secretKey}}
	if err := c.Create(testCtx(t), sec); err != nil {
		t.Fatal(err)
	}
	rs := &v1alpha1.ReportStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.ReportStoreSpec{
		Endpoint: ep, Bucket: bucket, Prefix: "reports", Insecure: true,
		CredentialsSecretRef: v1alpha1.SecretReference{Name: sec.Name},
	}}
	if err := c.Create(testCtx(t), rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// download reads an object back (gunzipped when the encoding says so) and
// checks it against the status: size and digest of the stored bytes.
func download(t *testing.T, bucket string, rep *v1alpha1.ReportStatus) []byte {
	t.Helper()
	ctx := testCtx(t)
	o, err := miniotest.Client(t).GetObject(ctx, bucket, rep.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	raw, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("downloading s3://%s/%s: %v", bucket, rep.Key, err)
	}
	sum := sha256.Sum256(raw)
	if int64(len(raw)) != rep.Bytes || hex.EncodeToString(sum[:]) != rep.SHA256 {
		t.Errorf("object of %d bytes sha256 %x; status says %d bytes sha256 %s", len(raw), sum, rep.Bytes, rep.SHA256)
	}
	if rep.ContentEncoding != "gzip" {
		return raw
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("the report is not valid CSV: %v", err)
	}
	return recs
}

// allRows is the store's whole answer to q, newest first, page by page.
func allRows(t *testing.T, st store.Store, q mailflow.Query) []mailflow.Row {
	t.Helper()
	var out []mailflow.Row
	var cur mailflow.Cursor
	for {
		p, err := st.Trace(testCtx(t), q, cur, 5000)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Rows...)
		if p.Next == "" {
			return out
		}
		cur = p.Next
	}
}

// requireSummaryEqual compares a summary report, cell by cell on the columns
// a reader relies on, with the store's rows in order.
func requireSummaryEqual(t *testing.T, recs [][]string, rows []mailflow.Row) {
	t.Helper()
	if len(recs) == 0 || fmt.Sprint(recs[0]) != fmt.Sprint(report.SummaryColumns) {
		t.Fatalf("header %v, want %v", recs[:min(1, len(recs))], report.SummaryColumns)
	}
	recs = recs[1:]
	if len(recs) != len(rows) {
		t.Fatalf("the report has %d rows, the store %d", len(recs), len(rows))
	}
	for i, r := range rows {
		want := []string{r.Received.UTC().Format(time.RFC3339Nano), r.Sender, r.Recipient, string(r.Status),
			strconv.FormatInt(r.Size, 10), r.MessageID, r.MessageTraceID, r.FromIP, string(r.Direction)}
		got := recs[i]
		have := []string{got[0], got[1], got[2], got[4], got[5], got[6], got[7], got[9], got[11]}
		if fmt.Sprint(have) != fmt.Sprint(want) {
			t.Fatalf("row %d: report %q\nstore %q", i, have, want)
		}
		if got[3] != report.SafeCell(truncateSubject(r.Subject)) {
			t.Fatalf("row %d: subject %q, store %q", i, got[3], r.Subject)
		}
	}
}

func truncateSubject(s string) string { return TruncateRunes(s, report.MaxSubject) }

// objectsIn lists the objects and incomplete uploads of a bucket.
func objectsIn(t *testing.T, bucket string) (objects []string, incomplete int) {
	t.Helper()
	c := miniotest.Client(t)
	ctx := testCtx(t)
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		objects = append(objects, o.Key)
	}
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		incomplete++
	}
	return objects, incomplete
}

// benchRange is the last n days of the seeded data.
func benchRange(days int) (start, end *metav1.Time) {
	e := metav1.NewTime(storetest.BenchEnd)
	s := metav1.NewTime(storetest.BenchEnd.Add(-time.Duration(days) * day))
	return &s, &e
}

func minioStatOpts() minio.StatObjectOptions { return minio.StatObjectOptions{} }

func secretOf(t *testing.T, env *kubetest.Env, rs *v1alpha1.ReportStore) *corev1.Secret {
	t.Helper()
	sec := &corev1.Secret{}
	if err := env.Client.Get(testCtx(t), client.ObjectKey{Namespace: rs.Namespace, Name: rs.Spec.CredentialsSecretRef.Name}, sec); err != nil {
		t.Fatal(err)
	}
	return sec
}
