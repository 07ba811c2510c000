package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"

	"github.com/jackc/pgx/v5"
)

// Replicated starts two throwaway clusters of its own on loopback: a primary
// and a hot standby streaming from it (made by `pg_basebackup -R`, so
// primary_conninfo and standby.signal are what PostgreSQL writes itself).
// It returns the DSNs of the database "mailtrace" on each (created on the
// primary before the base backup). Both are stopped and removed when the
// test ends. The shared server of DSN is not involved (an external
// MAILTRACE_TEST_POSTGRES cannot be given a standby by a test), so this needs
// the PostgreSQL binaries: without them the test skips, or fails under CI.
func Replicated(t testing.TB) (primaryDSN, standbyDSN string) {
	t.Helper()
	p, err := newCluster(t)
	if err != nil {
		fail(t, err)
	}
	if err := p.initdb(); err != nil {
		t.Fatal(err)
	}
	if err := p.startOnFreePort(); err != nil {
		t.Fatal(err)
	}
	if err := exec1(p.dsn("postgres"), `CREATE DATABASE mailtrace`); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	s, err := newCluster(t)
	if err != nil {
		t.Fatal(err)
	}
	bb := exec.Command(filepath.Join(s.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.port),
		"-U", "postgres", "-D", filepath.Join(s.dir, "data"), "-R", "-X", "stream", "--no-sync", "-c", "fast")
	bb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	bb.Dir = s.dir
	bb.Env = s.env()
	if out, err := bb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out)
	}
	if err := s.startOnFreePort(); err != nil {
		t.Fatal(err)
	}
	return p.dsn("mailtrace"), s.dsn("mailtrace")
}

// newCluster prepares an empty directory for a cluster of its own, removed
// (after its server is stopped) when the test ends.
func newCluster(t testing.TB) (*server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if !isExec(filepath.Join(bin, "pg_basebackup")) {
		return nil, errMissing{"pgtest: pg_basebackup not found in " + bin + "; " + installHint}
	}
	s := &server{bin: bin}
	var uid, gid int
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root, and initdb/postgres refuse to run as root, but there is no `postgres` OS user to run them as (%v)", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	if s.dir, err = os.MkdirTemp("", "mailtrace-pgtest-"); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		s.mu.Lock()
		_ = s.stopLocked()
		s.mu.Unlock()
		if s.logFile != nil {
			s.logFile.Close()
		}
		os.RemoveAll(s.dir)
	})
	if err := os.WriteFile(filepath.Join(s.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
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
	if s.logFile, err = os.Create(filepath.Join(s.dir, "postgres.log")); err != nil {
		return nil, err
	}
	return s, nil
}

// initdb creates the cluster's data directory (trust authentication on
// loopback, replication connections included: initdb's default pg_hba).
func (s *server) initdb() error {
	initdb := exec.Command(filepath.Join(s.bin, "initdb"), "-D", filepath.Join(s.dir, "data"),
		"-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Dir = s.dir
	initdb.Env = s.env()
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	return nil
}

// startOnFreePort starts the server on a free loopback port (a few tries:
// another process may take the port first).
func (s *server) startOnFreePort() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = harness.FreePort(); err != nil {
			return err
		}
		if err = s.runLocked(); err == nil {
			return nil
		}
	}
	return err
}

// WaitReplayed waits until the standby has replayed everything the primary
// had written when it was called (or fails the test after a minute).
func WaitReplayed(t testing.TB, primaryDSN, standbyDSN string) {
	t.Helper()
	lsn, err := query1(primaryDSN, `SELECT pg_current_wal_insert_lsn()::text`)
	if err != nil {
		t.Fatalf("pgtest: primary's position: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		done, err := query1(standbyDSN, `SELECT (pg_last_wal_replay_lsn() >= '`+lsn+`'::pg_lsn)::text`)
		if err == nil && done == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgtest: the standby did not replay up to %s within a minute (last error: %v)", lsn, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// query1 is the one text value a query returns.
func query1(dsn, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var v string
	err = conn.QueryRow(ctx, sql).Scan(&v)
	return v, err
}
