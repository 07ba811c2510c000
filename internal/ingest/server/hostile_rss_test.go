package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/store/sqlite"
	"github.com/mailtrace/mailtrace/internal/testutil/harness"
)

// EnvHostileRSS turns on TestHostileSendersRSS: "1" builds cmd/mailtrace
// for it, a path names a mailtrace binary already built.
const EnvHostileRSS = "MAILTRACE_HOSTILE_RSS"

// hostileRSSBound is the most resident memory the ingester may reach under
// any one attack (the chart's memory limit is 512 Mi).
const hostileRSSBound = 256 << 20

type rssCase struct {
	name   string
	args   []string // besides the listeners and the store
	tls    bool     // syslog over TLS with client certificates, the legitimate sender's
	legit  string   // "http" or "tcp": how the legitimate sender sends
	attack func(t *testing.T, tcp, http string, p *pki)
}

// The real `mailtrace ingest` binary under each hostile case of issue 15,
// one process per case, while a legitimate sender keeps sending: every
// legitimate message is stored, and the peak resident memory of the
// process (VmHWM) stays under 256 MiB. The figures are in
// docs/benchmarks.md ("Hostile senders").
//
//	MAILTRACE_HOSTILE_RSS=1 go test -count=1 -v -run '^TestHostileSendersRSS$' ./internal/ingest/server/
func TestHostileSendersRSS(t *testing.T) {
	bin := os.Getenv(EnvHostileRSS)
	if bin == "" {
		t.Skipf("%s is not set: this test builds and runs the mailtrace binary (%s=1, or the path of one)", EnvHostileRSS, EnvHostileRSS)
	}
	dir := t.TempDir()
	if bin == "1" {
		bin = filepath.Join(dir, "mailtrace")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/mailtrace/mailtrace/cmd/mailtrace").CombinedOutput()
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	p := newPKI(t)
	post := func(h, ctype, enc string, body []byte) {
		req, _ := http.NewRequest("POST", "http://"+h+"/ingest", bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 {
			t.Errorf("hostile POST answered %d", resp.StatusCode)
		}
	}
	four := func(f func()) {
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
	}
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 1024; i++ {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	idle := func(n int) func(t *testing.T, tcp, _ string, _ *pki) {
		return func(t *testing.T, tcp, _ string, _ *pki) {
			var conns []net.Conn
			for i := 0; i < n; i++ {
				if c, err := dialFrom("127.0.0.2", tcp); err == nil {
					conns = append(conns, c)
				}
			}
			time.Sleep(3 * time.Second)
			for _, c := range conns {
				c.Close()
			}
		}
	}
	cases := []rssCase{
		{name: "none (the legitimate sender alone)", legit: "http", attack: func(*testing.T, string, string, *pki) { time.Sleep(2 * time.Second) }},
		{name: "digit-space lines on newline TCP", legit: "tcp", attack: func(t *testing.T, tcp, _ string, _ *pki) {
			c, err := net.Dial("tcp", tcp)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(c, "4096 bytes of junk\n65000 y\n99999999 z\n")
			}
		}},
		{name: "malformed NDJSON mid-body", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			var b bytes.Buffer
			for i := 0; i < 50000; i++ {
				fmt.Fprintf(&b, "{\"log\":\"junk %d\"}\n{\"log\": tru\n", i)
			}
			req, _ := http.NewRequest("POST", "http://"+h+"/ingest", &b)
			req.Header.Set("Content-Type", "application/x-ndjson")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}},
		{name: "4 x 16 MiB of [{},{},...] at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			body := jsonEmptyRecords(16 << 20)
			four(func() { post(h, "application/json", "", body) })
		}},
		{name: "4 gzip bombs (1 GiB inflated each) at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			four(func() { post(h, "application/json", "gzip", bomb.Bytes()) })
		}},
		{name: "4 x 1 MiB of [[[[... at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			body := bytes.Repeat([]byte("["), 1<<20)
			four(func() { post(h, "application/json", "", body) })
		}},
		{name: "4 slow bodies (1 MB announced, a byte a second)", legit: "http", args: []string{"--http-body-timeout", "3s"}, attack: func(t *testing.T, _, h string, _ *pki) {
			four(func() {
				c, err := net.Dial("tcp", h)
				if err != nil {
					return
				}
				defer c.Close()
				fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n")
				for j := 0; j < 5; j++ {
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			})
		}},
		{name: "64 idle plain TCP connections", legit: "tcp", args: []string{"--max-connections", "64", "--max-connections-per-ip", "64", "--idle-timeout", "1s"}, attack: idle(64)},
		{name: "64 connections that never start TLS, and an mTLS sender", legit: "tcp", tls: true, args: []string{"--max-connections", "64"}, attack: idle(64)},
	}
	// each case without a state file (no write-ahead log), then with one
	// (the chart's StatefulSet: every accepted line goes through the log)
	var report []string
	for i, c := range cases {
		var cells []string
		for _, wal := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/wal=%v", i, wal), func(t *testing.T) {
				k := 2*i + map[bool]int{false: 0, true: 1}[wal]
				c := c
				if wal {
					c.args = append([]string{"--state-file", filepath.Join(dir, fmt.Sprintf("case%d.state", k))}, c.args...)
				}
				base, peak, sent := runRSSCase(t, bin, dir, p, c, k)
				cells = append(cells, fmt.Sprintf("%d | %d MiB | %d MiB", sent, base>>20, peak>>20))
				t.Logf("%s (write-ahead log: %v): %d legitimate messages, all stored; RSS %d MiB after start, peak %d MiB", c.name, wal, sent, base>>20, peak>>20)
				if peak > hostileRSSBound {
					t.Errorf("%s: peak RSS %d MiB, over %d MiB", c.name, peak>>20, hostileRSSBound>>20)
				}
			})
		}
		report = append(report, "| "+c.name+" | "+strings.Join(cells, " | ")+" |")
	}
	t.Log("| attack | legitimate messages, all stored | RSS after start | peak RSS (VmHWM) | with --state-file (write-ahead log): messages | RSS after start | peak RSS |\n|---|---|---|---|---|---|---|\n" + strings.Join(report, "\n"))
}

// vmHWM is the peak resident memory of a process, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the ingester's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

func runRSSCase(t *testing.T, bin, dir string, p *pki, c rssCase, i int) (base, peak int64, sent int) {
	tcp, h := harness.FreeAddr(t), harness.FreeAddr(t)
	db := filepath.Join(dir, fmt.Sprintf("case%d.db", i))
	args := []string{"ingest", "--store", "sqlite://" + db, "--syslog-tcp", tcp, "--metrics-bind-address", "0",
		"--accepted-domain", "example.com", "--accepted-domain", "*.example.com"}
	if c.tls {
		args = append(args, "--http", "", "--tls-cert", p.certFile, "--tls-key", p.keyFile, "--tls-client-ca", p.caFile)
	} else {
		args = append(args, "--http", h, "--insecure-no-auth")
	}
	cmd := exec.Command(bin, append(args, c.args...)...)
	cmd.Dir = dir
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	eventually(t, "the ingester listening", func() (bool, string) {
		conn, err := net.Dial("tcp", tcp)
		if err == nil {
			conn.Close()
		}
		return err == nil, logs.String()
	})
	time.Sleep(200 * time.Millisecond)
	base = vmHWM(t, cmd.Process.Pid)
	tag := fmt.Sprintf("rss%d", i)
	var l *legit
	switch {
	case c.tls:
		l = keepSending(t, func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tcp, p.clientTLS(p.client))
		}, tag, 2000)
	case c.legit == "tcp":
		l = keepSending(t, func() (net.Conn, error) { return net.Dial("tcp", tcp) }, tag, 2000)
	default:
		l = keepPosting(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port(h)}, tag, 2000)
	}
	if c.tls {
		time.Sleep(500 * time.Millisecond) // the sender is in before the flood
	}
	began := time.Now()
	c.attack(t, tcp, h, p)
	time.Sleep(time.Until(began.Add(2 * time.Second))) // the legitimate sender sends throughout
	sent = l.end(t)
	peak = vmHWM(t, cmd.Process.Pid)
	// every message the legitimate sender sent is stored, by the running
	// ingester (a stop cuts its connections: what it had not read yet of
	// a syslog connection would be lost, as on any syslog receiver)
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitDelivered(t, st, tag, sent)
	if p := vmHWM(t, cmd.Process.Pid); p > peak {
		peak = p
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the ingester stopped with %v:\n%s", err, logs.String())
		}
		waitDelivered(t, st, tag, sent) // and still after the stop
	case <-time.After(time.Minute):
		t.Fatalf("the ingester did not stop:\n%s", logs.String())
	}
	return base, peak, sent
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
