package mailflow

import "testing"

func TestClassifyPattern(t *testing.T) {
	for _, c := range []struct {
		in        string
		kind      PatternKind
		value     string
		prefix    string
		selective bool
	}{
		{"Kim@Example.org", PatternExact, "kim@example.org", "kim@example.org", true},
		{"root", PatternExact, "root", "root", true},
		{"*@Example.org", PatternDomain, "example.org", "", false},
		{"*@sub.example.org", PatternDomain, "sub.example.org", "", false},
		// not a domain pattern: an empty domain, a second '@', a second '*'
		{"*@", PatternLike, "%@", "", false},
		{"*@local\"@example.org", PatternLike, "%@local\"@example.org", "", false},
		{"*@*.example.org", PatternLike, "%@%.example.org", "", false},
		{"kim@*", PatternLike, "kim@%", "kim@", true},
		{"alic*", PatternLike, "alic%", "alic", true},
		{"al*", PatternLike, "al%", "al", false},
		{"*7@d0*.example", PatternLike, "%7@d0%.example", "", false},
		{"100%_x\\y*", PatternLike, "100\\%\\_x\\\\y%", "100%_x\\y", true},
		{"*", PatternLike, "%", "", false},
	} {
		got := ClassifyPattern(c.in)
		if got.Kind != c.kind || got.Value != c.value || got.Prefix != c.prefix {
			t.Errorf("ClassifyPattern(%q) = %+v, want kind %d value %q prefix %q", c.in, got, c.kind, c.value, c.prefix)
		}
		if got.Selective() != c.selective {
			t.Errorf("ClassifyPattern(%q).Selective() = %v, want %v", c.in, got.Selective(), c.selective)
		}
	}
}

// Every kind answers what MatchPattern, the reference, answers.
func TestClassifiedPatternAgreesWithMatch(t *testing.T) {
	addrs := []string{"", "kim@example.org", "root", "x@", "a@sub.example.org", `"o@l"@example.org`}
	for _, p := range []string{"kim@example.org", "*@example.org", "*@", "*@sub.example.org", "root"} {
		c := ClassifyPattern(p)
		for _, a := range addrs {
			var got bool
			switch c.Kind {
			case PatternExact:
				got = NormalizeAddress(a) == c.Value
			case PatternDomain:
				at := -1
				for i := range a {
					if a[i] == '@' {
						at = i
					}
				}
				got = at >= 0 && a[at+1:] == c.Value
			default:
				continue
			}
			if want := MatchPattern(p, a); got != want {
				t.Errorf("pattern %q (kind %d) on %q: %v, MatchPattern says %v", p, c.Kind, a, got, want)
			}
		}
	}
}
