// Package harness holds what the test harnesses that start real servers
// (pgtest, miniotest, kubetest) share: finding the repository, a free
// loopback port, and starting child processes that die with the test binary.
package harness

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// chosen at random below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range): a port the kernel hands out itself, to
// a listener on port 0 or to an outgoing connection of any process, can
// be taken between this check and the server's bind, which happened when
// the mail lab ran beside the other suites (rspamd's milter port answered
// by another program). Below the range, only another FreePort can take it.
func FreePort() (int, error) {
	lo := ephemeralLow()
	if base := lo - 12000; base >= 1024 {
		for range 64 {
			port := base + rand.IntN(lo-base)
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue
			}
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default 32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
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
