package harness

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestFreePortBelowEphemeralRange: the port is outside what the kernel
// hands out by itself, and a server can bind it.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if lo-12000 >= 1024 && (port < lo-12000 || port >= lo) {
			t.Fatalf("port %d, want one in [%d, %d)", port, lo-12000, lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		l.Close()
	}
}

// TestFreePortNeverTwice: ports picked and not bound yet (a lab picks all
// of its ports before its servers start) are never handed out again, in
// this process (500 random picks from 12,000 coincide about ten times) or
// in another one picking at the same moment.
func TestFreePortNeverTwice(t *testing.T) {
	if os.Getenv("HARNESS_PORTS_CHILD") != "" {
		for range 300 {
			port, err := FreePort()
			if err != nil {
				panic(err)
			}
			os.Stdout.WriteString(strconv.Itoa(port) + "\n")
		}
		return
	}
	seen := map[int]string{}
	for range 500 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] != "" {
			t.Fatalf("port %d handed out twice in one process", port)
		}
		seen[port] = "this process"
	}
	// Two other processes at once, while this one holds its blocks.
	var outs []*bufio.Scanner
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFreePortNeverTwice$", "-test.count=1")
		cmd.Env = append(os.Environ(), "HARNESS_PORTS_CHILD=1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, bufio.NewScanner(out))
	}
	for i, sc := range outs {
		who := "child " + strconv.Itoa(i)
		n := 0
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			port, err := strconv.Atoi(line)
			if err != nil {
				continue // the test binary's own PASS line
			}
			if prev := seen[port]; prev != "" {
				t.Fatalf("port %d handed out to %s and to %s", port, prev, who)
			}
			seen[port] = who
			n++
		}
		if err := cmds[i].Wait(); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if n != 300 {
			t.Fatalf("%s printed %d ports, want 300", who, n)
		}
	}
}
