package harness

import (
	"net"
	"strconv"
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
