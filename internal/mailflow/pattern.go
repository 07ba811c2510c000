package mailflow

import (
	"fmt"
	"strings"
)

// An address pattern is an address in which `*` matches any run of
// characters, compared case-insensitively: `kim@example.org`,
// `*@example.org`, `kim@*`, `*7@d0*.example`. MatchPattern is the reference
// semantics; ClassifyPattern tells a store which of its indexes answers one.

// PatternKind is how a store can answer an address pattern.
type PatternKind int

// Pattern kinds, from the most to the least selective.
const (
	// PatternExact has no wildcard: an equality on the address.
	PatternExact PatternKind = iota
	// PatternDomain is exactly `*@domain` (no other wildcard or '@', a
	// domain that is not empty): an equality on the domain column.
	PatternDomain
	// PatternLike is anything else: a LIKE on the address, which an index
	// serves only as far as its literal prefix (Pattern.Prefix) goes.
	PatternLike
)

// Pattern is an address pattern classified for a query.
type Pattern struct {
	Kind PatternKind
	// Value is what the store compares: the lower-cased address
	// (PatternExact), the lower-cased domain (PatternDomain), or a SQL LIKE
	// pattern with `\` as its escape character (PatternLike).
	Value string
	// Prefix is the lower-cased literal text before the first `*` (the whole
	// address for PatternExact).
	Prefix string
}

// ClassifyPattern classifies an address pattern. It is the one place both
// store adapters learn which condition a pattern becomes.
func ClassifyPattern(p string) Pattern {
	lp := strings.ToLower(p)
	prefix, _, wild := strings.Cut(lp, "*")
	switch {
	case !wild:
		return Pattern{Kind: PatternExact, Value: lp, Prefix: lp}
	case strings.HasPrefix(lp, "*@") && len(lp) > 2 && !strings.ContainsAny(lp[2:], "*@"):
		return Pattern{Kind: PatternDomain, Value: lp[2:]}
	default:
		return Pattern{Kind: PatternLike, Value: LikePattern(p), Prefix: prefix}
	}
}

// Selective reports whether an index on the address narrows the pattern
// enough to be worth using: an exact address, or a literal prefix that
// holds the '@' or is at least 4 characters long.
func (p Pattern) Selective() bool {
	return p.Kind == PatternExact || strings.Contains(p.Prefix, "@") || len(p.Prefix) >= 4
}

// ValidatePattern checks one address pattern: not empty, no white space or
// control characters, at most 320 characters. `*` may appear anywhere.
func ValidatePattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty address pattern")
	}
	if len(p) > 320 {
		return fmt.Errorf("address pattern %.40q... is longer than 320 characters", p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("address pattern %q contains white space or a control character", p)
		}
	}
	return nil
}

// NormalizeAddress is how addresses are stored and compared: trimmed of
// angle brackets and white space, lower-cased.
func NormalizeAddress(a string) string {
	a = strings.TrimSpace(a)
	a = strings.TrimPrefix(a, "<")
	a = strings.TrimSuffix(a, ">")
	return strings.ToLower(a)
}

// MatchPattern reports whether addr matches the `*` wildcard pattern,
// case-insensitively. It is the reference the SQL translations must agree with.
func MatchPattern(pattern, addr string) bool {
	p := strings.ToLower(pattern)
	s := strings.ToLower(addr)
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

// LikePattern translates a `*` pattern into a SQL LIKE pattern with `\` as
// the escape character, lower-cased (compare against lower-cased columns).
func LikePattern(pattern string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(pattern) {
		switch r {
		case '*':
			b.WriteByte('%')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// LikeLiteral escapes s for use inside a LIKE pattern (lower-cased).
func LikeLiteral(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(strings.ToLower(s))
}

// HasWildcard reports whether a pattern contains `*`.
func HasWildcard(p string) bool { return strings.Contains(p, "*") }

// InScope reports whether a row with this sender and recipient is visible in
// scope (nil: everything; empty: nothing).
func InScope(scope []string, sender, recipient string) bool {
	if scope == nil {
		return true
	}
	return matchAny(scope, sender) || matchAny(scope, recipient)
}

func matchAny(patterns []string, addr string) bool {
	for _, p := range patterns {
		if MatchPattern(p, addr) {
			return true
		}
	}
	return false
}
