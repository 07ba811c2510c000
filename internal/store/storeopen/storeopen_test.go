package storeopen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr string
	}{
		{in: "sqlite:///var/lib/mailtrace/mailtrace.db", want: Target{Kind: KindSQLite, Path: "/var/lib/mailtrace/mailtrace.db"}},
		{in: "sqlite://data/mailtrace.db", want: Target{Kind: KindSQLite, Path: "data/mailtrace.db"}},
		{in: "sqlite:data/mailtrace.db", want: Target{Kind: KindSQLite, Path: "data/mailtrace.db"}},
		{in: "SQLite:///x.db", want: Target{Kind: KindSQLite, Path: "/x.db"}},
		{in: "sqlite:///tmp/with%20space.db", want: Target{Kind: KindSQLite, Path: "/tmp/with space.db"}},
		{in: "/abs/mailtrace.db", want: Target{Kind: KindSQLite, Path: "/abs/mailtrace.db"}},
		{in: "relative.db", want: Target{Kind: KindSQLite, Path: "relative.db"}},
		{in: " ./.demo/mailtrace.db ", want: Target{Kind: KindSQLite, Path: "./.demo/mailtrace.db"}},
		{in: "postgres://mt:secret@db:5432/mailtrace?sslmode=disable",
			want: Target{Kind: KindPostgres, DSN: "postgres://mt:secret@db:5432/mailtrace?sslmode=disable"}},
		{in: "postgresql://db/mailtrace", want: Target{Kind: KindPostgres, DSN: "postgresql://db/mailtrace"}},
		{in: "", wantErr: "empty"},
		{in: "sqlite://", wantErr: "names no file"},
		{in: "sqlite:///x.db?mode=ro", wantErr: "no query parameters"},
		{in: "mysql://root:hunter2@db/mail", wantErr: `unknown scheme "mysql"`},
		// Retention has one owner, the manager's --retention.
		{in: "postgres://db/mailtrace?retention=30d&sslmode=disable", wantErr: "--retention"},
		// Neither a URL nor a .db path: refused, and never echoed (it may be
		// a keyword DSN with a password) instead of becoming a SQLite file.
		{in: "host=db user=mt password=hunter2 dbname=mailtrace", wantErr: "keyword DSN"},
		{in: "data/mailtrace", wantErr: `store "data/mailtrace": the store is not`},
		{in: "my store.db", wantErr: "a path ending in .db"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://mt:s3cret@db:5432/mailtrace", "postgres://mt:xxxxx@db:5432/mailtrace"},
		{"postgres://mt@db/mailtrace", "postgres://mt@db/mailtrace"},
		{"postgres://db/mailtrace?password=s3cret&sslmode=disable", "postgres://db/mailtrace?password=xxxxx&sslmode=disable"},
		// does not parse as a URL (bad port): still redacted
		{"postgres://mt:s3cret@db:port/mailtrace", "postgres://mt:xxxxx@db:port/mailtrace"},
		{"host=db user=mt password=s3cret dbname=x", "host=db user=mt password=xxxxx dbname=x"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorsNeverPrintPasswords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range []string{
		"postgres://mt:s3cret@db:port/mailtrace",                                     // unparseable
		"postgres://mt:s3cret@127.0.0.1:1/mailtrace?connect_timeout=2",               // nothing listens on port 1
		"postgres://mt@127.0.0.1:1/mailtrace?password=s3cret&connect_timeout=2",      // password as a parameter
		"postgresql://mt:s3cret@127.0.0.1:1/mailtrace?connect_timeout=2&retention=x", // bad retention
	} {
		s, err := Open(ctx, u)
		if err == nil {
			// The adapter may connect lazily; then there is no error to check.
			_ = s.Close()
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s) error leaks the password: %v", Redact(u), err)
		}
	}
	if err := redactError(errTest("dial mt:s3cret@db failed"), "postgres://mt:s3cret@db/x"); !strings.Contains(err.Error(), "mt:xxxxx@db") {
		t.Errorf("redactError = %q", err.Error())
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestOpenSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{
		"sqlite://" + filepath.Join(dir, "a.db"), // sqlite:///tmp/...: absolute
		filepath.Join(dir, "b.db"),               // bare path
	} {
		s, err := Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping(%s): %v", u, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close(%s): %v", u, err)
		}
	}
	t.Chdir(dir)
	s, err := Open(ctx, "sqlite://rel/c.db")
	if err == nil {
		_ = s.Close()
		t.Log("sqlite://rel/c.db opened with a missing parent directory (the adapter creates it)")
	}
	s, err = Open(ctx, "sqlite://c.db")
	if err != nil {
		t.Fatalf("Open(sqlite://c.db): %v", err)
	}
	_ = s.Close()
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"48h", 48 * time.Hour, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"d", 0, false},
		{"week", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestOpenMustExist: with MustExist a missing SQLite file is ErrNotExist,
// naming the file, and nothing is created; an existing one opens.
func TestOpenMustExist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "sub", "trace.db")
	_, err := OpenWithOptions(ctx, "sqlite://"+missing, Options{MustExist: true})
	if !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("MustExist created the directory: %v", err)
	}
	s, err := Open(ctx, filepath.Join(dir, "trace.db"))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s, err = OpenWithOptions(ctx, filepath.Join(dir, "trace.db"), Options{MustExist: true})
	if err != nil {
		t.Fatalf("existing store: %v", err)
	}
	_ = s.Close()
}
