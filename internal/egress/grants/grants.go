// Package grants reads what a namespace may reach from the cluster: the
// destinations (webhook hosts, ReportStore endpoints) and the email
// recipients TracePolicies grant it, on top of the manager's own grants.
package grants

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/egress"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Resolver answers, per namespace, the guard its connections go through and
// the recipients its emails may go to. A nil *Resolver grants everything
// (a reconciler built without one, as in unit tests, is unrestricted).
type Resolver struct {
	// Reader lists TracePolicies (the manager's cached client).
	Reader client.Reader
	// NamespaceReader reads a Namespace's labels for label selectors,
	// uncached (RBAC grants the manager get on namespaces, not list); Reader
	// when nil.
	NamespaceReader client.Reader
	// Global grants every namespace (the manager's --allow-destination).
	Global egress.Rules
	// GlobalRecipients may receive any namespace's emails (--allow-email-recipient).
	GlobalRecipients []string
	// TrustedNamespace is the operator's own namespace: unrestricted ("" for none).
	TrustedNamespace string
	// AnyRecipient turns the recipient check off (--tenancy=disabled: a
	// single-team cluster, where every namespace is the same team).
	AnyRecipient bool
	// DNS resolves host names (default: the system's); tests give their own.
	DNS egress.Resolver
}

// Guard returns the dial guard of the namespace's connections.
func (r *Resolver) Guard(ctx context.Context, namespace string) (*egress.Guard, error) {
	if r == nil || namespace == r.TrustedNamespace && namespace != "" {
		all, _ := egress.ParseRules([]string{"*"})
		return &egress.Guard{Rules: all}, nil
	}
	policies, labels, err := r.policies(ctx, namespace)
	if err != nil {
		return nil, err
	}
	// A policy's destinations were checked by the CRD; one that still does
	// not parse (an older manager's object) is skipped, not fatal.
	rules := r.Global
	for _, d := range v1alpha1.DestinationGrants(policies, namespace, labels) {
		if g, err := egress.ParseRules([]string{d}); err == nil {
			rules = rules.Merge(g)
		}
	}
	return &egress.Guard{Rules: rules, Resolver: r.DNS}, nil
}

// CheckRecipients returns an error naming the first recipient the
// namespace's grants do not cover (nil when all are covered).
func (r *Resolver) CheckRecipients(ctx context.Context, namespace string, to []string) error {
	if r == nil || r.AnyRecipient || namespace == r.TrustedNamespace && namespace != "" {
		return nil
	}
	policies, labels, err := r.policies(ctx, namespace)
	if err != nil {
		return err
	}
	allowed := append(v1alpha1.EmailRecipientGrants(policies, namespace, labels), r.GlobalRecipients...)
	for _, a := range to {
		if !matchAny(allowed, a) {
			return &RecipientNotAllowedError{Recipient: a, Namespace: namespace}
		}
	}
	return nil
}

// RecipientNotAllowedError names a recipient outside the grants.
type RecipientNotAllowedError struct{ Recipient, Namespace string }

func (e *RecipientNotAllowedError) Error() string {
	return fmt.Sprintf("recipient %s is not granted to namespace %s: a cluster administrator grants recipients "+
		"in a TracePolicy selecting the namespace (spec.addresses or spec.emailRecipients)", e.Recipient, e.Namespace)
}

func matchAny(patterns []string, addr string) bool {
	addr = strings.ToLower(addr)
	for _, p := range patterns {
		if mailflow.MatchPattern(strings.ToLower(p), addr) {
			return true
		}
	}
	return false
}

func (r *Resolver) policies(ctx context.Context, namespace string) ([]v1alpha1.TracePolicy, map[string]string, error) {
	var list v1alpha1.TracePolicyList
	if err := r.Reader.List(ctx, &list); err != nil {
		return nil, nil, fmt.Errorf("list TracePolicies: %w", err)
	}
	for i := range list.Items {
		if list.Items[i].Spec.NamespaceSelector == nil {
			continue
		}
		nr := r.NamespaceReader
		if nr == nil {
			nr = r.Reader
		}
		ns := &corev1.Namespace{}
		if err := nr.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
			return nil, nil, fmt.Errorf("read namespace %s for its TracePolicy grants: %w", namespace, err)
		}
		return list.Items, ns.Labels, nil
	}
	return list.Items, nil, nil
}
