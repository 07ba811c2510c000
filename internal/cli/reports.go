package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/controllers/messagetrace"
	"github.com/mailtrace/mailtrace/internal/objectstore"
)

// Environment variables holding the default report store's credentials
// (when --default-report-store-credentials-dir is not given).
const (
	EnvReportAccessKey    = "MAILTRACE_REPORT_STORE_ACCESS_KEY_ID"
	EnvReportSecretKey    = "MAILTRACE_REPORT_STORE_SECRET_ACCESS_KEY"
	EnvReportSessionToken = "MAILTRACE_REPORT_STORE_SESSION_TOKEN"
)

// ReportOptions configure reports: the export pool, the status threshold
// and the operator-wide default report store.
type ReportOptions struct {
	// Workers is the size of the export worker pool (0: 2).
	Workers int
	// Threshold is the longest range answered in status alone (0: 240h).
	Threshold time.Duration
	// Default is the default report store; nil (or no bucket): none.
	Default *objectstore.Config
	// CheckInterval is how often ReportStores are rechecked (0: 5m).
	CheckInterval time.Duration
}

// reportFlags are the raw flags of the default report store.
type reportFlags struct {
	cfg            objectstore.Config
	caFile         string
	credentialsDir string
}

func addReportFlags(fl *pflag.FlagSet, o *ReportOptions, f *reportFlags) {
	fl.IntVar(&o.Workers, "report-workers", messagetrace.DefaultWorkers, "CSV reports written at once (the export worker pool)")
	fl.DurationVar(&o.Threshold, "report-threshold", messagetrace.DefaultStatusRangeLimit, "ranges longer than this are answered by a CSV report")
	fl.DurationVar(&o.CheckInterval, "report-store-check-interval", 0, "how often ReportStores are rechecked (default 5m)")
	fl.StringVar(&f.cfg.Endpoint, "default-report-store-endpoint", "", "S3 endpoint (host:port or URL) of the default report store; empty means AWS S3")
	fl.StringVar(&f.cfg.Bucket, "default-report-store-bucket", "", "bucket of the default report store, used by traces that name no ReportStore (empty: no default store)")
	fl.StringVar(&f.cfg.Prefix, "default-report-store-prefix", "", "key prefix of reports in the default report store")
	fl.StringVar(&f.cfg.Region, "default-report-store-region", "", "region of the default report store's bucket")
	fl.BoolVar(&f.cfg.Insecure, "default-report-store-insecure", false, "use plain HTTP for the default report store")
	fl.StringVar(&f.cfg.SSE, "default-report-store-sse", "", "server-side encryption of the default report store: AES256 or aws:kms:<key-id>")
	fl.StringVar(&f.caFile, "default-report-store-ca-file", "", "PEM CA bundle trusted for the default report store")
	fl.StringVar(&f.credentialsDir, "default-report-store-credentials-dir", "",
		"directory of a mounted Secret with the files accessKeyID and secretAccessKey (and optionally sessionToken); "+
			"without it $"+EnvReportAccessKey+" and $"+EnvReportSecretKey+", else the ambient AWS credentials")
}

// defaultStoreConfig completes the default store's configuration from the
// CA file and the credentials (mounted Secret, else environment); nil when
// no bucket is set.
func (f *reportFlags) defaultStoreConfig(getenv func(string) string) (*objectstore.Config, error) {
	if f.cfg.Bucket == "" {
		return nil, nil
	}
	cfg := f.cfg
	if f.caFile != "" {
		b, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--default-report-store-ca-file: %w", err)
		}
		cfg.CABundle = b
	}
	if f.credentialsDir != "" {
		read := func(name string, required bool) (string, error) {
			b, err := os.ReadFile(filepath.Join(f.credentialsDir, name))
			if err != nil && (required || !os.IsNotExist(err)) {
				return "", fmt.Errorf("--default-report-store-credentials-dir: %w", err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		var err error
		if cfg.AccessKey, err = read(v1alpha1.AccessKeyIDKey, true); err != nil {
			return nil, err
		}
		if cfg.SecretKey, err = read(v1alpha1.SecretAccessKeyKey, true); err != nil {
			return nil, err
		}
		if cfg.SessionToken, err = read(v1alpha1.SessionTokenKey, false); err != nil {
			return nil, err
		}
		return &cfg, nil
	}
	cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = getenv(EnvReportAccessKey), getenv(EnvReportSecretKey), getenv(EnvReportSessionToken)
	return &cfg, nil
}

// openDefaultReportStore opens the default report store (nil when none).
// It is not checked here: a failing store shows on the traces that use it.
func openDefaultReportStore(_ context.Context, cfg *objectstore.Config) (*messagetrace.DefaultReportStore, error) {
	if cfg == nil || cfg.Bucket == "" {
		return nil, nil
	}
	c := *cfg
	if c.UploadBuffers == 0 {
		c.UploadBuffers = messagetrace.DefaultUploadBuffers
	}
	os, err := objectstore.New(c)
	if err != nil {
		return nil, fmt.Errorf("default report store: %w", err)
	}
	return &messagetrace.DefaultReportStore{Store: os, Endpoint: cfg.Endpoint, Bucket: cfg.Bucket, Prefix: cfg.Prefix}, nil
}
