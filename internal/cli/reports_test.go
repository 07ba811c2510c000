package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestDefaultReportStoreConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("accessKeyID", "AKFILE\n")
	write("secretAccessKey", "SKFILE\n")
	write("ca.pem", "-----BEGIN CERTIFICATE-----\n")
	env := map[string]string{EnvReportAccessKey: "AKENV", EnvReportSecretKey: "SKENV"}
	getenv := func(k string) string { return env[k] }

	parse := func(args ...string) *reportFlags {
		t.Helper()
		var o ReportOptions
		var f reportFlags
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		addReportFlags(fs, &o, &f)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &f
	}

	if cfg, err := parse().defaultStoreConfig(getenv); cfg != nil || err != nil {
		t.Errorf("no bucket: %+v, %v; want no default store", cfg, err)
	}
	cfg, err := parse("--default-report-store-bucket=b", "--default-report-store-endpoint=minio:9000", "--default-report-store-prefix=p",
		"--default-report-store-insecure").defaultStoreConfig(getenv)
	if err != nil || cfg.Bucket != "b" || cfg.Endpoint != "minio:9000" || cfg.Prefix != "p" || !cfg.Insecure || cfg.AccessKey != "AKENV" || cfg.SecretKey != "SKENV" {
		t.Errorf("from the environment: %+v, %v", cfg, err)
	}
	cfg, err = parse("--default-report-store-bucket=b", "--default-report-store-credentials-dir="+dir,
		"--default-report-store-ca-file="+filepath.Join(dir, "ca.pem")).defaultStoreConfig(getenv)
	if err != nil || cfg.AccessKey != "AKFILE" || cfg.SecretKey != "SKFILE" || cfg.SessionToken != "" || !strings.HasPrefix(string(cfg.CABundle), "-----BEGIN") {
		t.Errorf("from a mounted Secret: %+v, %v", cfg, err)
	}
	if _, err := parse("--default-report-store-bucket=b", "--default-report-store-credentials-dir="+t.TempDir()).defaultStoreConfig(getenv); err == nil {
		t.Error("an empty credentials directory is accepted")
	}
	if cfg, _ := parse("--default-report-store-bucket=b").defaultStoreConfig(func(string) string { return "" }); cfg.AccessKey != "" {
		t.Errorf("no credentials anywhere should leave them to the ambient chain: %+v", cfg)
	}
}
