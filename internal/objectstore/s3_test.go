package objectstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/objectstore/objectstoretest"
	"github.com/mailtrace/mailtrace/internal/testutil/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

// configs remembers the configuration of each store the harness made, so
// Incomplete and StartIncomplete can reach its bucket with a raw client.
var (
	configsMu sync.Mutex
	configs   = map[objectstore.Store]objectstore.Config{}
)

func newStore(t testing.TB, cfg objectstore.Config) objectstore.Store {
	t.Helper()
	s, err := objectstore.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	configsMu.Lock()
	configs[s] = cfg
	configsMu.Unlock()
	return s
}

func goodConfig(t testing.TB) objectstore.Config {
	ep, ak, sk := miniotest.Server(t)
	return objectstore.Config{
		Endpoint: ep, Insecure: true, AccessKey: ak, SecretKey: sk,
		Bucket: miniotest.Bucket(t), Prefix: "/mailtrace/reports/",
	}
}

var harness = objectstoretest.Harness{
	New: func(t testing.TB, f objectstoretest.Fault) objectstore.Store {
		cfg := goodConfig(t)
		switch f {
		case objectstoretest.MissingBucket:
			cfg.Bucket = "mt-no-such-bucket"
		case objectstoretest.WrongSecret:
			cfg.SecretKey = objectstoretest.WrongSecretKey
		case objectstoretest.Unreachable:
			cfg.Endpoint = miniotest.ClosedEndpoint(t)
			cfg.MaxRetries = 1
		}
		return newStore(t, cfg)
	},
	Incomplete: func(t testing.TB, s objectstore.Store, prefix string) []string {
		cfg := configs[s]
		full := strings.Trim(cfg.Prefix, "/") + "/" + prefix
		seen := map[string]string{}
		// MinIO lists an exact key's uploads when given a prefix, and all
		// uploads (since it started) without one.
		for _, p := range []string{full, ""} {
			for u := range miniotest.Client(t).ListIncompleteUploads(context.Background(), cfg.Bucket, p, true) {
				if u.Err != nil {
					t.Fatalf("list incomplete uploads: %v", u.Err)
				}
				if strings.HasPrefix(u.Key, full) {
					seen[u.UploadID] = strings.TrimPrefix(u.Key, strings.Trim(cfg.Prefix, "/")+"/")
				}
			}
		}
		var keys []string
		for _, k := range seen {
			keys = append(keys, k)
		}
		return keys
	},
	StartIncomplete: func(t testing.TB, s objectstore.Store, key string) {
		cfg := configs[s]
		core := minio.Core{Client: miniotest.Client(t)}
		obj := strings.Trim(cfg.Prefix, "/") + "/" + key
		ctx := context.Background()
		id, err := core.NewMultipartUpload(ctx, cfg.Bucket, obj, minio.PutObjectOptions{})
		if err != nil {
			t.Fatalf("NewMultipartUpload: %v", err)
		}
		body := strings.Repeat("x", 1024)
		if _, err := core.PutObjectPart(ctx, cfg.Bucket, obj, id, 1, strings.NewReader(body), int64(len(body)), minio.PutObjectPartOptions{}); err != nil {
			t.Fatalf("PutObjectPart: %v", err)
		}
	},
}

func TestConformance(t *testing.T) { objectstoretest.Run(t, harness) }

// TestStoppedServer watches a store created while the server ran fail with
// ErrUnreachable while it is stopped, and work again once it is back.
func TestStoppedServer(t *testing.T) {
	cfg := goodConfig(t)
	cfg.MaxRetries = 1
	s := newStore(t, cfg)
	ctx := context.Background()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	miniotest.Stop(t)
	stopped := true
	defer func() {
		if stopped {
			miniotest.Start(t)
		}
	}()
	err := s.Check(ctx)
	if !errors.Is(err, objectstore.ErrUnreachable) || objectstore.Reason(err) != objectstore.ReasonUnreachable {
		t.Errorf("Check with the server stopped = %v (reason %s), want ErrUnreachable", err, objectstore.Reason(err))
	}
	_, err = s.Upload(ctx, "x.csv", strings.NewReader("x"), objectstore.UploadOptions{})
	if !errors.Is(err, objectstore.ErrUnreachable) {
		t.Errorf("Upload with the server stopped = %v, want ErrUnreachable", err)
	}
	miniotest.Start(t)
	stopped = false
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after restart: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	base := objectstore.Config{Endpoint: "127.0.0.1:9000", Bucket: "b", AccessKey: "ak", SecretKey: "very-secret"}
	tests := []struct {
		name string
		edit func(c *objectstore.Config)
	}{
		{"no bucket", func(c *objectstore.Config) { c.Bucket = "" }},
		{"part size below 5 MiB", func(c *objectstore.Config) { c.PartSize = 1 << 20 }},
		{"unknown SSE", func(c *objectstore.Config) { c.SSE = "aws:kms" }},
		{"SSE-KMS without a key id", func(c *objectstore.Config) { c.SSE = "aws:kms:" }},
		{"endpoint with a path", func(c *objectstore.Config) { c.Endpoint = "https://s3.example.com/bucket" }},
		{"endpoint with another scheme", func(c *objectstore.Config) { c.Endpoint = "ftp://s3.example.com" }},
		{"https endpoint but insecure", func(c *objectstore.Config) { c.Endpoint = "https://s3.example.com"; c.Insecure = true }},
		{"CA bundle without PEM", func(c *objectstore.Config) { c.CABundle = []byte("not a certificate") }},
		{"CA bundle on plain HTTP", func(c *objectstore.Config) {
			c.Endpoint = "http://s3.example.com"
			c.CABundle = []byte("-----BEGIN CERTIFICATE-----")
		}},
		{"access key without secret", func(c *objectstore.Config) { c.SecretKey = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := objectstore.New(cfg)
			if !errors.Is(err, objectstore.ErrInvalidConfig) || objectstore.Reason(err) != objectstore.ReasonInvalidConfig {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "very-secret") {
				t.Errorf("message reveals the secret: %v", err)
			}
		})
	}
	for _, ok := range []objectstore.Config{
		base,
		{Endpoint: "http://127.0.0.1:9000", Bucket: "b"},
		{Endpoint: "https://s3.example.com:8443/", Bucket: "b", SSE: "AES256", Region: "eu-west-1"},
		{Bucket: "b", SSE: "aws:kms:arn:aws:kms:eu-west-1:1234:key/abcd", PartSize: 64 << 20},
	} {
		if _, err := objectstore.New(ok); err != nil {
			t.Errorf("New(%+v) = %v", ok, err)
		}
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("other"), objectstore.ReasonUploadFailed},
		{&objectstore.Error{Op: "upload", Kind: objectstore.ErrUnreachable}, "StoreUnreachable"},
		{&objectstore.Error{Op: "check", Kind: objectstore.ErrBucketMissing}, "BucketMissing"},
		{&objectstore.Error{Op: "check", Kind: objectstore.ErrAccessDenied}, "AccessDenied"},
		{&objectstore.Error{Op: "upload", Kind: objectstore.ErrQuotaExceeded}, "QuotaExceeded"},
		{&objectstore.Error{Op: "stat", Kind: objectstore.ErrNotFound}, "ObjectMissing"},
		{&objectstore.Error{Op: "upload"}, "UploadFailed"},
		{context.Canceled, "Canceled"},
		{context.DeadlineExceeded, "DeadlineExceeded"},
	}
	for _, tc := range tests {
		if got := objectstore.Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestDeadline: a context that expires mid-request is reported as such,
// not as an unreachable store.
func TestDeadline(t *testing.T) {
	s := newStore(t, goodConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := s.Check(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || objectstore.Reason(err) != objectstore.ReasonDeadlineExceeded {
		t.Errorf("Check with an expired context = %v (%s)", err, objectstore.Reason(err))
	}
}

// TestCABundle: an HTTPS endpoint whose certificate is signed by a private
// CA works with that CA in CABundle, and is unreachable (with a TLS error,
// not a hang or an access error) without it.
func TestCABundle(t *testing.T) {
	ep, ca := miniotest.TLSServer(t)
	bucket := miniotest.TLSBucket(t)
	ctx := context.Background()
	cfg := objectstore.Config{Endpoint: "https://" + ep, Bucket: bucket, AccessKey: miniotest.AccessKey,
		SecretKey: miniotest.SecretKey, CABundle: ca, MaxRetries: 1}
	s := newStore(t, cfg)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check with the CA bundle: %v", err)
	}
	if _, err := s.Upload(ctx, "tls.csv", strings.NewReader("a,b\r\n"), objectstore.UploadOptions{}); err != nil {
		t.Fatalf("Upload over TLS: %v", err)
	}
	cfg.CABundle = nil
	err := newStore(t, cfg).Check(ctx)
	if !errors.Is(err, objectstore.ErrUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Check without the CA bundle = %v (%s), want ErrUnreachable for the certificate", err, objectstore.Reason(err))
	}
}

// TestConformanceTwoBuffers runs the suite again with UploadBuffers 2, the
// reports' setting: parts filled in turn and uploaded concurrently must keep
// every promise (nothing visible on failure, incomplete uploads aborted).
func TestConformanceTwoBuffers(t *testing.T) {
	h := harness
	h.New = func(t testing.TB, f objectstoretest.Fault) objectstore.Store {
		s := harness.New(t, f)
		configsMu.Lock()
		cfg := configs[s]
		configsMu.Unlock()
		cfg.UploadBuffers = 2
		return newStore(t, cfg)
	}
	objectstoretest.Run(t, h)
}
