package v1alpha1

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Selects reports whether the policy grants the namespace with this name
// and these labels. An invalid selector selects nothing.
func (p *TracePolicy) Selects(namespace string, nsLabels map[string]string) bool {
	if slices.Contains(p.Spec.Namespaces, namespace) {
		return true
	}
	if p.Spec.NamespaceSelector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(nsLabels))
}

// Grants returns the union of the address patterns the policies grant the
// namespace (deduplicated, in order), and the names of the policies that do.
// Grants is empty (not nil) when no policy selects the namespace.
func Grants(policies []TracePolicy, namespace string, nsLabels map[string]string) (patterns, by []string) {
	patterns = []string{}
	seen := map[string]bool{}
	for i := range policies {
		p := &policies[i]
		if !p.Selects(namespace, nsLabels) {
			continue
		}
		by = append(by, p.Name)
		for _, a := range p.Spec.Addresses {
			if s := string(a); !seen[s] {
				seen[s] = true
				patterns = append(patterns, s)
			}
		}
	}
	return patterns, by
}

// DestinationGrants returns the union of the destinations the policies grant
// the namespace (host names, wildcard host names, CIDRs, IP addresses).
func DestinationGrants(policies []TracePolicy, namespace string, nsLabels map[string]string) []string {
	return union(policies, namespace, nsLabels, func(p *TracePolicy) []string {
		out := make([]string, len(p.Spec.Destinations))
		for i, d := range p.Spec.Destinations {
			out[i] = string(d)
		}
		return out
	})
}

// EmailRecipientGrants returns the recipient patterns the namespace's email
// notifications may go to: its granted addresses and emailRecipients.
func EmailRecipientGrants(policies []TracePolicy, namespace string, nsLabels map[string]string) []string {
	return union(policies, namespace, nsLabels, func(p *TracePolicy) []string {
		out := make([]string, 0, len(p.Spec.Addresses)+len(p.Spec.EmailRecipients))
		for _, a := range p.Spec.Addresses {
			out = append(out, string(a))
		}
		for _, a := range p.Spec.EmailRecipients {
			out = append(out, string(a))
		}
		return out
	})
}

func union(policies []TracePolicy, namespace string, nsLabels map[string]string, of func(*TracePolicy) []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for i := range policies {
		p := &policies[i]
		if !p.Selects(namespace, nsLabels) {
			continue
		}
		for _, s := range of(p) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// AccessDeniedMessage says why a namespace's traces see nothing, and how to grant it.
func AccessDeniedMessage(namespace string) string {
	return fmt.Sprintf("namespace %q is granted no addresses to trace: no TracePolicy selects it. "+
		"A cluster administrator grants it with a TracePolicy (spec.namespaces: [%s] or a spec.namespaceSelector "+
		"matching its labels, and spec.addresses such as '*@team.example.com'); then create the MessageTrace again", namespace, namespace)
}
