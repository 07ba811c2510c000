// Package harness holds what the test harnesses that start real servers
// (pgtest, miniotest, kubetest) share: finding the repository, a free
// loopback port, and starting child processes that die with the test binary.
package harness

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// RepoRoot returns the directory holding go.mod, walking up from the working
// directory (a test runs in its package's directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns a "127.0.0.1:port" that was free a moment ago, for a
// server a test starts; it fails the test when there is none.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// Tail returns the last n bytes of s, for quoting a server's output in an error.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Spawn starts cmd from one OS thread that never exits: a Pdeathsig set in
// cmd.SysProcAttr fires when the creating thread dies, not the process, so
// the thread must live as long as the test binary.
func Spawn(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, done: make(chan error)}
	spawnCh <- r
	return <-r.done
}

var spawnCh = func() chan spawnReq {
	ch := make(chan spawnReq)
	go func() {
		runtime.LockOSThread()
		for r := range ch {
			r.done <- r.cmd.Start()
		}
	}()
	return ch
}()

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}
