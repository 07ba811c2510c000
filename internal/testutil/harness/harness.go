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
	"sync"
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that no other FreePort, in this process or another, hands out while this
// process lives. A server binds its port seconds after the pick (Postfix
// runs `postfix check` first), and a random pick left that window open:
// two picks of one lab could coincide, and another test binary could take
// the port first; the lab's Postfix then answered its probe with a reset
// and its milter port with another program's bytes.
//
// So, as HashiCorp's freeport does for Consul's tests, each process claims
// a block of ports below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range: the kernel hands those out by itself, to
// a listener on port 0 or to any outgoing connection) by keeping a
// listener on the block's first port, and hands out the rest of the block
// one by one, each checked with a bind. A process that sees a block's
// first port taken leaves that block alone. (The consul/sdk module is not
// imported for these lines: it brings Consul's dependency tree.)
func FreePort() (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	for range 4 * portBlock {
		if ports.next >= ports.end {
			if !ports.claim() {
				break
			}
		}
		port := ports.next
		ports.next++
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // bound by a program that does not use FreePort
		}
		l.Close()
		return port, nil
	}
	// No block left below the ephemeral range: one the kernel picks.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portBlock is how many ports a process claims at a time (its first is the
// claim itself).
const portBlock = 200

// portBlocks is what a process has claimed: the listeners that hold its
// blocks (for the life of the process) and the next port to hand out.
type portBlocks struct {
	mu        sync.Mutex
	next, end int
	locks     []net.Listener
}

var ports portBlocks

// claim takes a block no other process holds, at random among the blocks
// in the 12,000 ports below the ephemeral range, and reports whether it
// found one.
func (p *portBlocks) claim() bool {
	lo := ephemeralLow()
	base := lo - 12000
	if base < 1024 {
		return false
	}
	n := (lo - base) / portBlock
	first := rand.IntN(n)
	for i := range n {
		start := base + ((first+i)%n)*portBlock
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(start)))
		if err != nil {
			continue // another process's claim, or a port in use
		}
		p.locks = append(p.locks, l)
		p.next, p.end = start+1, start+portBlock
		return true
	}
	return false
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
