package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		ip, want string
	}{
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"169.254.169.254", "link-local"}, // AWS, GCP, Azure metadata
		{"fe80::1", "link-local"},
		{"fd00:ec2::254", "private"}, // AWS metadata over IPv6
		{"100.100.100.200", "shared (CGNAT)"},
		{"10.96.0.1", "private"}, // a typical service CIDR
		{"172.16.5.4", "private"},
		{"192.168.1.1", "private"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "link-local"}, // link-local multicast
		{"239.1.2.3", "multicast"},
		{"255.255.255.255", "reserved"},
		{"64:ff9b::7f00:1", "NAT64"},
		{"2002:7f00:1::", "6to4"},
		{"93.184.216.34", ""},
		{"2606:4700::1111", ""},
		{"8.8.8.8", ""},
	} {
		if got := Classify(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Classify(%s) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

func TestRules(t *testing.T) {
	r, err := ParseRules([]string{"10.20.0.0/16", "fd00::/8", "192.168.1.7", "minio.storage.svc", "*.hooks.internal.example", " "})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"minio.storage.svc", true},
		{"MINIO.storage.svc.", true},
		{"x.minio.storage.svc", false},
		{"a.hooks.internal.example", true},
		{"a.b.hooks.internal.example", true},
		{"hooks.internal.example", false},
		{"evilhooks.internal.example", false},
		{"localhost", false},
	} {
		if got := r.AllowsHost(tc.host); got != tc.want {
			t.Errorf("AllowsHost(%s) = %v, want %v", tc.host, got, tc.want)
		}
	}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"10.20.3.4", true},
		{"10.21.0.1", false},
		{"fd12::1", true},
		{"192.168.1.7", true},
		{"192.168.1.8", false},
		{"127.0.0.1", false},
		{"169.254.169.254", false},
		{"8.8.8.8", true}, // public: allowed without a grant
	} {
		if got := r.AllowsIP(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("AllowsIP(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	all, _ := ParseRules([]string{"*"})
	if !all.AllowsIP(netip.MustParseAddr("127.0.0.1")) || !all.AllowsHost("anything") {
		t.Error(`"*" must grant everything`)
	}
	for _, bad := range []string{"10.0.0.0/33", "host:8080", "https://x.example", "a..b", "*.*.x", "*" + string(make([]byte, 300))} {
		if _, err := ParseRules([]string{bad}); err == nil {
			t.Errorf("ParseRules(%q): want an error", bad)
		}
	}
	if m := (Rules{}).Merge(r); !m.AllowsHost("minio.storage.svc") {
		t.Error("Merge lost a host grant")
	}
}

// fakeResolver answers fixed addresses, as a hostile DNS server would.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range f[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if out == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// counting is a loopback HTTP server that counts the connections it accepts.
func counting(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &n
}

func TestGuardRefusesBeforeConnecting(t *testing.T) {
	srv, hits := counting(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	redirector, redirHits := counting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:"+port+"/admin", http.StatusTemporaryRedirect)
	}))
	_, rport, _ := net.SplitHostPort(redirector.Listener.Addr().String())
	res := fakeResolver{
		"internal.example":  {"127.0.0.1"},
		"mixed.example":     {"93.184.216.34", "127.0.0.1"},
		"metadata.example":  {"169.254.169.254"},
		"redirector.public": {"127.0.0.1"},
	}
	post := func(g *Guard, url string) error {
		c := g.Client(5 * time.Second)
		resp, err := c.Post(url, "application/json", nil)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	none := &Guard{Resolver: res}
	for _, url := range []string{
		"http://127.0.0.1:" + port + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://internal.example:" + port + "/",
		"http://mixed.example:" + port + "/",
		"http://metadata.example:" + port + "/",
		"http://169.254.169.254:" + port + "/latest/meta-data/",
	} {
		err := post(none, url)
		var na *NotAllowedError
		if !errors.Is(err, ErrNotAllowed) || !errors.As(err, &na) {
			t.Errorf("POST %s: %v, want a NotAllowedError", url, err)
		}
	}
	// A redirect from a granted host to an ungranted address is refused
	// at the second hop.
	rules, _ := ParseRules([]string{"redirector.public"})
	if err := post(&Guard{Rules: rules, Resolver: res}, "http://redirector.public:"+rport+"/"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("redirect to loopback: %v, want refused", err)
	}
	if redirHits.Load() != 1 {
		t.Errorf("the granted redirector saw %d connections, want 1", redirHits.Load())
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal service saw %d connections, want 0", n)
	}
	// Granted by CIDR or by name, the same service is reached.
	for _, grant := range []string{"127.0.0.0/8", "internal.example"} {
		rules, err := ParseRules([]string{grant})
		if err != nil {
			t.Fatal(err)
		}
		if err := post(&Guard{Rules: rules, Resolver: res}, "http://internal.example:"+port+"/"); err != nil {
			t.Errorf("granted %s: %v", grant, err)
		}
	}
	if hits.Load() != 2 {
		t.Errorf("granted requests made %d connections, want 2", hits.Load())
	}
}
