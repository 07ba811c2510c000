// Package pgtest gives tests a real PostgreSQL: a fresh, empty database per
// call to DSN.
//
// The server is the one named by MAILTRACE_TEST_POSTGRES (a DSN whose user may
// CREATE DATABASE) when that variable is set. Otherwise a throwaway cluster is
// created with initdb in a temporary directory and started once per test
// process on a free loopback port (run as the `postgres` OS user when the
// tests run as root, because initdb and postgres refuse to run as root). It
// is stopped, and its directory removed, by Main:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// When the PostgreSQL binaries are missing, tests skip with a message saying
// how to install them, or fail with that message when CI is set.
//
// Environment:
//   - MAILTRACE_TEST_POSTGRES: use this server instead of a throwaway one.
//   - MAILTRACE_PG_BINDIR: the directory holding initdb and postgres
//     (default: the newest /usr/lib/postgresql/*/bin, else `pg_config --bindir`).
//   - CI: a missing PostgreSQL fails the test instead of skipping it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"

	"github.com/jackc/pgx/v5"
)

// EnvServer names the environment variable holding an external server's DSN.
const EnvServer = "MAILTRACE_TEST_POSTGRES"

// EnvBinDir names the environment variable holding the PostgreSQL bin directory.
const EnvBinDir = "MAILTRACE_PG_BINDIR"

const installHint = "install it with `apt-get install -y postgresql` (or run hack/postgres.sh), " +
	"or point " + EnvServer + " at a server where the user may create databases"

// errMissing marks "PostgreSQL is not installed": skip, or fail under CI.
type errMissing struct{ msg string }

func (e errMissing) Error() string { return e.msg }

// BinDir returns the directory holding initdb and postgres: MAILTRACE_PG_BINDIR,
// else the newest /usr/lib/postgresql/<version>/bin, else `pg_config --bindir`.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
		return "", errMissing{fmt.Sprintf("pgtest: %s=%s holds no initdb and postgres; %s", EnvBinDir, d, installHint)}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errMissing{"pgtest: PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or `pg_config --bindir`; " + installHint}
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// server is the throwaway cluster of this test process.
type server struct {
	mu      sync.Mutex
	bin     string
	dir     string // temp root: data/ and sock/
	port    int
	cred    *syscall.Credential
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

var (
	startOnce sync.Once
	srv       *server
	startErr  error
	dbSeq     int
	dbSeqMu   sync.Mutex
)

// Main runs the tests and then stops the throwaway server (if one was
// started) and removes its directory. Use it as TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown stops the throwaway server and removes its directory. Main calls
// it; call it yourself only from a TestMain that cannot use Main.
func Shutdown() {
	if srv == nil {
		return
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	_ = srv.stopLocked()
	if srv.logFile != nil {
		srv.logFile.Close()
	}
	os.RemoveAll(srv.dir)
}

// fail reports err: a skip for a missing installation (a failure under CI), a failure otherwise.
func fail(t testing.TB, err error) {
	t.Helper()
	var m errMissing
	if errors.As(err, &m) && os.Getenv("CI") == "" {
		t.Skip(err.Error())
	}
	t.Fatal(err.Error())
}

// Server returns the DSN of the server's maintenance database (an admin
// connection that may create databases), starting the throwaway server on
// first use.
func Server(t testing.TB) (adminDSN string) {
	t.Helper()
	if dsn := os.Getenv(EnvServer); dsn != "" {
		return dsn
	}
	startOnce.Do(func() { srv, startErr = start() })
	if startErr != nil {
		fail(t, startErr)
	}
	return srv.dsn("postgres")
}

// DSN returns the DSN of a fresh, empty database (created with CREATE
// DATABASE under a unique name). On an external server the database is
// dropped when the test ends; on the throwaway one it vanishes with the server.
func DSN(t testing.TB) string {
	t.Helper()
	admin := Server(t)
	dbSeqMu.Lock()
	dbSeq++
	n := dbSeq
	dbSeqMu.Unlock()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("mt_%s_%d_%s", sanitize(t.Name()), n, hex.EncodeToString(rnd[:]))
	if err := exec1(admin, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	if os.Getenv(EnvServer) != "" {
		t.Cleanup(func() {
			_ = exec1(admin, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
		})
	}
	return withDB(admin, name)
}

// NamedDSN returns the DSN of the database called name, creating it when it
// does not exist, and never dropping it: for data sets worth keeping across
// runs on a persistent MAILTRACE_TEST_POSTGRES server (a benchmark's seed).
// created reports whether it was just created (so is empty).
func NamedDSN(t testing.TB, name string) (dsn string, created bool) {
	t.Helper()
	admin := Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatalf("pgtest: create database %s: %v", name, err)
		}
	}
	return withDB(admin, name), !exists
}

// UnixDSN returns dsn (a DSN of the throwaway server) rewritten to connect
// over the server's Unix socket, and true; on an external server, dsn and
// false. A Unix socket's buffers have a fixed size (net.core.wmem_default,
// about 200 KiB), while loopback TCP grows them to tens of MiB as the client
// reads: a test that needs the server to block while sending needs the
// former.
func UnixDSN(t testing.TB, dsn string) (string, bool) {
	t.Helper()
	if External() || srv == nil {
		return dsn, false
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	q := u.Query()
	q.Set("host", filepath.Join(srv.dir, "sock"))
	q.Set("port", strconv.Itoa(srv.port))
	u.Host = ""
	u.RawQuery = q.Encode()
	return u.String(), true
}

// External reports whether the tests use an external server (MAILTRACE_TEST_POSTGRES).
func External() bool { return os.Getenv(EnvServer) != "" }

// Stop stops the throwaway server (a fast shutdown: connections are cut),
// keeping its data, so a test can watch a client cope with the store being
// down. Start brings it back on the same port. Tests that use Stop must not
// run in parallel with other tests of the same process that need the server.
// With MAILTRACE_TEST_POSTGRES the server is not ours to stop and the test is skipped.
func Stop(t testing.TB) {
	t.Helper()
	if External() {
		t.Skip("pgtest: cannot stop the external server of " + EnvServer)
	}
	Server(t)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if err := srv.stopLocked(); err != nil {
		t.Fatalf("pgtest: stop: %v", err)
	}
}

// Start starts the throwaway server again after Stop (a no-op when it runs).
func Start(t testing.TB) {
	t.Helper()
	if External() {
		t.Skip("pgtest: cannot start the external server of " + EnvServer)
	}
	Server(t)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.cmd != nil {
		return
	}
	if err := srv.runLocked(); err != nil {
		t.Fatalf("pgtest: start: %v", err)
	}
}

// Restart stops and starts the throwaway server.
func Restart(t testing.TB) {
	t.Helper()
	Stop(t)
	Start(t)
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func sanitize(s string) string {
	s = nonWord.ReplaceAllString(strings.ToLower(s), "_")
	if len(s) > 30 {
		s = s[len(s)-30:]
	}
	return strings.Trim(s, "_")
}

// withDB returns dsn (URL or keyword/value form) pointing at database name.
func withDB(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + name
			return u.String()
		}
	}
	return dsn + " dbname=" + name
}

func exec1(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func (s *server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// start creates and starts the throwaway cluster.
func start() (*server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin}
	var uid, gid int
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root, and initdb/postgres refuse to run as root, but there is no `postgres` OS user to run them as (%v); "+
				"create one (the postgresql package does: apt-get install -y postgresql) or set %s", err, EnvServer)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	removeStale()
	s.dir, err = os.MkdirTemp("", "mailtrace-pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(s.dir)
		}
	}()
	for _, d := range []string{s.dir, filepath.Join(s.dir, "sock")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		if s.cred != nil {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(s.dir, "data"),
		"-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Dir = s.dir
	initdb.Env = s.env()
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	s.logFile, err = os.Create(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = harness.FreePort(); err != nil {
			return nil, err
		}
		if lastErr = s.runLocked(); lastErr == nil {
			ok = true
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *server) env() []string {
	return []string{"PATH=" + s.bin + ":/usr/bin:/bin", "HOME=" + s.dir, "LC_ALL=C", "TZ=UTC"}
}

// runLocked starts postgres on s.port and waits until it accepts connections.
func (s *server) runLocked() error {
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port), "-k", filepath.Join(s.dir, "sock"),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=256MB",
		"-c", "max_locks_per_transaction=256", "-c", "log_min_messages=warning")
	// Pdeathsig stops the server even when the test binary dies without
	// reaching Main's clean-up (a test timeout panics); see spawn.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	cmd.Dir = s.dir
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	if err := harness.Spawn(cmd); err != nil {
		return fmt.Errorf("pgtest: start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("pgtest: postgres exited at start:\n%s", harness.Tail(string(log), 2000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			_ = s.stopLocked()
			return fmt.Errorf("pgtest: postgres did not accept connections within a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopLocked asks for a fast shutdown, then an immediate one, then kills.
func (s *server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGKILL} {
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.exited:
			return nil
		case <-time.After(20 * time.Second):
		}
	}
	return errors.New("postgres did not exit")
}

// removeStale removes the directories of throwaway clusters whose test
// process died without reaching Main's clean-up (killed, or a test timeout).
// Their servers stopped with them (Pdeathsig); only the files remain.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "mailtrace-pgtest-*"))
	for _, d := range dirs {
		owner := filepath.Join(d, "owner.pid")
		if _, err := os.Stat(owner); err != nil {
			// Being created by another process right now, or left by an old
			// version of this package: only an old one goes.
			if st, err := os.Stat(d); err != nil || time.Since(st.ModTime()) < 10*time.Minute {
				continue
			}
		} else if !dead(owner) {
			continue
		}
		if !dead(filepath.Join(d, "data", "postmaster.pid")) {
			continue
		}
		os.RemoveAll(d)
	}
}

// dead reports whether the process whose pid is the first line of file is
// gone; a missing file counts as gone, an unreadable one as alive.
func dead(file string) bool {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
