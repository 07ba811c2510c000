// Package storeopen opens a trace store from a URL, so that every command
// (manager, query, events load, demo) names its store the same way:
//
//	sqlite:///var/lib/mailtrace/mailtrace.db   absolute path
//	sqlite://data/mailtrace.db                 path relative to the working directory
//	data/mailtrace.db                          a bare path ending in .db is a SQLite file too
//	postgres://user:pass@host:5432/db?sslmode=disable
//	postgresql://...                           the same
//
// Nothing else is taken: a libpq keyword DSN (host=... password=...) or a
// path without .db is refused rather than becoming a SQLite file of that
// name. A PostgreSQL URL is handed to the PostgreSQL adapter as it is.
// Retention is not a store setting: the manager's --retention is its one
// owner. Errors never print a password.
package storeopen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/duration"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/postgres"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

// Options apply to every store kind that supports them.
type Options struct {
	// MustExist refuses a SQLite file that does not exist (ErrNotExist)
	// instead of creating an empty store: for commands that only read, where
	// a new store means a mistyped path.
	MustExist bool
	// ReplicaURL, when set, is a postgres:// URL of a hot standby of the
	// PostgreSQL store: traces, counts and reports read from it, ingest and
	// retention write to the primary. A SQLite store has no replica.
	ReplicaURL string
	// MaxReplicaLag is the replica lag above which a trace says it may miss
	// the newest messages (0: the adapter's default, 30s).
	MaxReplicaLag time.Duration
}

// ErrNotExist is the error of a store that MustExist and does not.
var ErrNotExist = errors.New("the store does not exist")

// Kind names the adapter a URL selects.
type Kind string

// Store kinds.
const (
	KindSQLite   Kind = "sqlite"
	KindPostgres Kind = "postgres"
)

// Target is a parsed store URL.
type Target struct {
	Kind Kind
	// Path is the SQLite file (KindSQLite).
	Path string
	// DSN is what the PostgreSQL adapter gets (KindPostgres).
	DSN string
}

// Open opens the store a URL names.
func Open(ctx context.Context, rawURL string) (store.Store, error) {
	return OpenWithOptions(ctx, rawURL, Options{})
}

// OpenWithOptions opens the store a URL names, with options.
func OpenWithOptions(ctx context.Context, rawURL string, opts Options) (store.Store, error) {
	t, err := Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var replica Target
	if opts.ReplicaURL != "" {
		if replica, err = Parse(opts.ReplicaURL); err != nil {
			return nil, fmt.Errorf("replica: %w", err)
		}
		if t.Kind != KindPostgres || replica.Kind != KindPostgres {
			return nil, errors.New("a store replica is a postgres:// URL of a hot standby of a PostgreSQL store; a SQLite store has none")
		}
	}
	switch t.Kind {
	case KindSQLite:
		if opts.MustExist {
			if _, err := os.Stat(t.Path); errors.Is(err, fs.ErrNotExist) {
				name := t.Path
				if abs, err := filepath.Abs(t.Path); err == nil && abs != t.Path {
					name += " (" + abs + ")"
				}
				return nil, fmt.Errorf("SQLite store %s: no such file: %w", name, ErrNotExist)
			}
		}
		s, err := sqlite.Open(ctx, t.Path)
		if err != nil {
			return nil, fmt.Errorf("open SQLite store %s: %w", t.Path, err)
		}
		return s, nil
	default:
		s, err := postgres.Open(ctx, t.DSN, postgres.Options{ReplicaDSN: replica.DSN, MaxReplicaLag: opts.MaxReplicaLag})
		if err != nil {
			return nil, redactError(redactError(fmt.Errorf("open PostgreSQL store %s: %w", Redact(t.DSN), err), rawURL), opts.ReplicaURL)
		}
		return s, nil
	}
}

var errUnknownStore = errors.New("the store is not sqlite:///path/to/mailtrace.db, postgres://user@host/db " +
	"or a path ending in .db (a libpq keyword DSN such as 'host=... dbname=...' must be written as a postgres:// URL)")

// Parse splits a store URL into what the adapters need, without opening anything.
func Parse(rawURL string) (Target, error) {
	u := strings.TrimSpace(rawURL)
	if u == "" {
		return Target{}, errors.New("store URL is empty: use sqlite:///path/to/mailtrace.db or postgres://user@host/db")
	}
	scheme, rest, hasScheme := strings.Cut(u, ":")
	if !hasScheme || !strings.HasPrefix(rest, "//") && !isKnownScheme(scheme) || looksLikeWindowsDrive(scheme) {
		// A bare path (no scheme): only a .db file. Anything else is more
		// likely a mistake (a keyword DSN holding a password, say) than a
		// file name, and the message does not repeat it.
		if strings.ContainsAny(u, "= \t") {
			return Target{}, errUnknownStore // may be a keyword DSN: not repeated
		}
		if !strings.HasSuffix(strings.ToLower(u), ".db") {
			return Target{}, fmt.Errorf("store %q: %w", u, errUnknownStore)
		}
		return Target{Kind: KindSQLite, Path: u}, nil
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3", "file":
		p := strings.TrimPrefix(rest, "//")
		if i := strings.IndexAny(p, "?#"); i >= 0 {
			return Target{}, fmt.Errorf("store URL %q: a SQLite URL takes no query parameters", u)
		}
		if p == "" || p == "/" {
			return Target{}, fmt.Errorf("store URL %q names no file: use sqlite:///abs/path.db or sqlite://relative/path.db", u)
		}
		if decoded, err := url.PathUnescape(p); err == nil {
			p = decoded
		}
		return Target{Kind: KindSQLite, Path: p}, nil
	case "postgres", "postgresql":
		parsed, err := url.Parse(u)
		if err != nil {
			return Target{}, fmt.Errorf("store URL %s is not a valid URL", Redact(u))
		}
		if parsed.Query().Has("retention") {
			return Target{}, fmt.Errorf("store URL %s: retention is not a store URL parameter; "+
				"the manager's --retention (the chart's store.retention) is its one setting", Redact(u))
		}
		return Target{Kind: KindPostgres, DSN: parsed.String()}, nil
	default:
		return Target{}, fmt.Errorf("store URL %s: unknown scheme %q (use sqlite:// or postgres://)", Redact(u), scheme)
	}
}

func isKnownScheme(s string) bool {
	switch strings.ToLower(s) {
	case "sqlite", "sqlite3", "file", "postgres", "postgresql":
		return true
	}
	return false
}

func looksLikeWindowsDrive(s string) bool {
	return len(s) == 1 && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z')
}

var (
	userinfoRE = regexp.MustCompile(`(://[^:/@\s]*):[^@\s]*@`)
	kvPassRE   = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|[^\s&]*)`)
)

// Redact returns the URL with any password replaced by "xxxxx", fit for
// errors and logs. It also handles URLs that do not parse.
func Redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	s := userinfoRE.ReplaceAllString(rawURL, "${1}:xxxxx@")
	return kvPassRE.ReplaceAllString(s, "${1}xxxxx")
}

// redactError scrubs every password that rawURL carries from err's text.
func redactError(err error, rawURL string) error {
	secrets := passwords(rawURL)
	if len(secrets) == 0 {
		return err
	}
	msg := err.Error()
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return &redactedError{msg: msg, err: err}
}

func passwords(rawURL string) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
			if esc := url.QueryEscape(s); esc != s {
				out = append(out, esc)
			}
			if esc := url.PathEscape(s); esc != s {
				out = append(out, esc)
			}
		}
	}
	if u, err := url.Parse(rawURL); err == nil {
		if p, ok := u.User.Password(); ok {
			add(p)
		}
		add(u.Query().Get("password"))
	}
	if m := userinfoRE.FindStringSubmatch(rawURL); m != nil {
		full := m[0]
		i := strings.LastIndex(full[:len(full)-1], ":")
		add(full[i+1 : len(full)-1])
	}
	return out
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Unwrap keeps errors.Is working for callers (context deadlines and the like);
// the wrapped error's own text may contain the password, so never print it.
func (e *redactedError) Unwrap() error { return e.err }

// ParseDuration accepts a Go duration (48h, 90m) or days (7d, 1.5d, 1d12h):
// the spellings a MessageTrace's window accepts (see package duration),
// with surrounding blanks ignored.
func ParseDuration(s string) (time.Duration, error) {
	return duration.Parse(strings.TrimSpace(s))
}
