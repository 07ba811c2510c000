// Package egress decides which network destinations the manager may connect
// to on a tenant's behalf (webhook notifications, ReportStore endpoints), and
// enforces it where it cannot be walked around: at connect time, on the
// resolved IP address, for every connection (so every redirect hop and every
// DNS answer is checked, and DNS rebinding gains nothing).
//
// By default a destination is refused when any address it resolves to is
// loopback, link-local (the cloud metadata services among them), private,
// shared (CGNAT), unspecified, multicast or otherwise not globally routable:
// that is where a cluster's internal services live. A cluster administrator
// grants exceptions by host name pattern or by CIDR.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ErrNotAllowed is matched (errors.Is) by every refusal of the guard.
var ErrNotAllowed = errors.New("destination not allowed")

// NotAllowedError says which host was refused and what kind of address it
// resolved to. It names no resolved address: a tenant learns nothing about
// the cluster's network beyond "this is internal".
type NotAllowedError struct {
	Host string
	// Class of the refused address: "loopback", "link-local", "private", ...
	Class string
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("destination %s is not allowed: it is a %s address, which only a cluster administrator can grant "+
		"(TracePolicy spec.destinations, or the manager's --allow-destination)", e.Host, e.Class)
}

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// shared is 100.64.0.0/10 (RFC 6598, carrier-grade NAT; Alibaba's metadata
// service is 100.100.100.200), which netip does not call private.
var restrictedPrefixes = []struct {
	p     netip.Prefix
	class string
}{
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"}, // maps to IPv4, possibly internal
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("2002::/16"), "6to4"}, // embeds an IPv4 address
}

// Classify returns the class of a restricted address ("loopback",
// "link-local", "private", ...) or "" for a public one.
func Classify(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsPrivate():
		return "private"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, r := range restrictedPrefixes {
		if r.p.Contains(ip) {
			return r.class
		}
	}
	if ip.Is4() && ip.As4()[0] == 0 { // 0.0.0.0/8: "this network"
		return "unspecified"
	}
	return ""
}

// Rules are the grants: host name patterns and CIDRs.
type Rules struct {
	hosts    []string // lower case; "*.x" matches any name ending in ".x"
	prefixes []netip.Prefix
	all      bool
}

// ParseRules reads grants: a CIDR (10.20.0.0/16, fd00::/8), a single IP
// address, a host name (minio.storage.svc.cluster.local) or a wildcard host
// name (*.hooks.internal.example, which does not match
// hooks.internal.example itself). "*" grants everything (for the operator's
// own namespace). Ports and URLs are refused: a grant is a host.
func ParseRules(rules []string) (Rules, error) {
	var r Rules
	for _, s := range rules {
		if err := r.add(s); err != nil {
			return Rules{}, err
		}
	}
	return r, nil
}

func (r *Rules) add(raw string) error {
	s := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case s == "":
		return nil
	case s == "*":
		r.all = true
		return nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("destination grant %q: not a CIDR such as 10.20.0.0/16", raw)
		}
		r.prefixes = append(r.prefixes, p.Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		r.prefixes = append(r.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		return nil
	}
	if err := ValidHostPattern(s); err != nil {
		return fmt.Errorf("destination grant %q: %v", raw, err)
	}
	r.hosts = append(r.hosts, s)
	return nil
}

// ValidHostPattern checks a host name grant: DNS labels, optionally
// starting with "*." (one wildcard, leftmost only).
func ValidHostPattern(s string) error {
	name := strings.TrimPrefix(s, "*.")
	if name == "" || len(name) > 253 || strings.ContainsAny(name, "*:/@ ") {
		return errors.New("want a host name (minio.storage.svc), a wildcard host name (*.hooks.example.com), a CIDR or an IP address")
	}
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l == "" || len(l) > 63 {
			return errors.New("want a host name (minio.storage.svc), a wildcard host name (*.hooks.example.com), a CIDR or an IP address")
		}
	}
	return nil
}

// Merge returns the union of r and o.
func (r Rules) Merge(o Rules) Rules {
	return Rules{
		hosts:    append(append([]string(nil), r.hosts...), o.hosts...),
		prefixes: append(append([]netip.Prefix(nil), r.prefixes...), o.prefixes...),
		all:      r.all || o.all,
	}
}

// AllowsHost reports whether the host name is granted (every address it
// resolves to is then allowed).
func (r Rules) AllowsHost(host string) bool {
	if r.all {
		return true
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range r.hosts {
		p = strings.TrimSuffix(p, ".")
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if strings.HasSuffix(h, suffix) && len(h) > len(suffix) {
				return true
			}
		} else if h == p {
			return true
		}
	}
	return false
}

// AllowsIP reports whether the address may be connected to: a public
// address, or one inside a granted CIDR.
func (r Rules) AllowsIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	if r.all || Classify(ip) == "" {
		return true
	}
	for _, p := range r.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Resolver looks host names up (net.DefaultResolver; tests give their own).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard dials only allowed destinations.
type Guard struct {
	Rules Rules
	// Resolver (default net.DefaultResolver).
	Resolver Resolver
	// Dialer connects (default: 10s timeout, 30s keep-alive).
	Dialer *net.Dialer
}

// DialContext is a net.Dialer.DialContext that resolves addr's host itself,
// refuses it unless the host is granted or every address it resolves to is
// allowed, and then connects to the checked address only (never resolving
// again, so the answer checked is the answer used).
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	if !g.Rules.AllowsHost(host) {
		// Every address must be allowed: a name answering both a public
		// and an internal address would otherwise reach the internal one
		// whenever the public one fails.
		for _, ip := range ips {
			if !g.Rules.AllowsIP(ip) {
				return nil, &NotAllowedError{Host: host, Class: Classify(ip)}
			}
		}
	}
	d := g.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	}
	var first error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	var r Resolver = net.DefaultResolver
	if g.Resolver != nil {
		r = g.Resolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, nil
}

// MaxRedirects a guarded HTTP client follows; each hop is dialled through the guard.
const MaxRedirects = 5

// Transport returns an HTTP transport that dials through the guard and
// never through a proxy from the environment (a proxy would connect on our
// behalf, out of the guard's sight).
func (g *Guard) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = g.DialContext
	return t
}

// Client returns an HTTP client with the guard's transport, following at
// most MaxRedirects redirects.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: g.Transport(),
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				return fmt.Errorf("stopped after %d redirects", MaxRedirects)
			}
			return nil
		},
	}
}
