package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TracePolicySpec grants namespaces the addresses their MessageTraces may
// see, the internal network destinations their webhooks and ReportStores may
// reach, and who their email notifications may go to.
// +kubebuilder:validation:XValidation:rule="(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",message="a TracePolicy must select namespaces: list them in namespaces or give a namespaceSelector"
// +kubebuilder:validation:XValidation:rule="has(self.addresses) || has(self.destinations) || has(self.emailRecipients)",message="a TracePolicy must grant something: addresses, destinations or emailRecipients"
type TracePolicySpec struct {
	// Namespaces granted by name.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector grants every namespace whose labels match (in
	// addition to those listed). An empty selector ({}) selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Addresses the selected namespaces may trace: a MessageTrace of such a
	// namespace sees a row when its sender or its recipient matches one of
	// these patterns (or one granted by another TracePolicy selecting the
	// namespace). Wildcards as in MessageTrace: `*@team-a.example.com`,
	// `*@*.team-a.example.com`, `alice@example.com`.
	// A namespace granted no addresses by any policy gets AccessDenied.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +listType=set
	// +optional
	Addresses []AddressPattern `json:"addresses,omitempty"`
	// Destinations the selected namespaces' webhook notifications and
	// ReportStore endpoints may connect to although they are internal.
	// Without a grant the manager refuses any host that resolves to a
	// loopback, link-local (cloud metadata), private, shared (CGNAT) or
	// other non-public address, checked on every connection and redirect.
	// A grant is a host name (`minio.storage.svc.cluster.local`), a
	// wildcard host name (`*.hooks.internal.example`), a CIDR
	// (`10.20.0.0/16`) or an IP address.
	// +kubebuilder:validation:MaxItems=100
	// +listType=set
	// +optional
	Destinations []Destination `json:"destinations,omitempty"`
	// EmailRecipients the selected namespaces' email notifications may be
	// sent to, in addition to the addresses granted above. Wildcards as in
	// addresses (`*@team-a.example.com`). A recipient granted neither way is
	// refused (RecipientNotAllowed).
	// +kubebuilder:validation:MaxItems=100
	// +listType=set
	// +optional
	EmailRecipients []AddressPattern `json:"emailRecipients,omitempty"`
}

// Destination is a host name, a wildcard host name (`*.example.internal`),
// a CIDR or an IP address.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="self.matches('^([*][.])?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?([.][A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*[.]?$') || isCIDR(self) || isIP(self)",message="a destination is a host name (minio.storage.svc), a wildcard host name (*.hooks.example.com), a CIDR (10.20.0.0/16) or an IP address"
type Destination string

// TracePolicyStatus is empty: a policy takes effect when a MessageTrace runs.
type TracePolicyStatus struct{}

// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=tp,categories=mailtrace
// +kubebuilder:printcolumn:name="Namespaces",type=string,JSONPath=`.spec.namespaces`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// TracePolicy is cluster-scoped and for cluster administrators: it grants
// namespaces (by name or by label selector) the address patterns their
// MessageTraces may see, the internal destinations their webhooks and
// ReportStores may reach, and the recipients of their email notifications. A namespace's grant is the union of every policy
// selecting it; a namespace with none gets AccessDenied. The operator's own
// namespace is unrestricted, and the manager's --tenancy=disabled turns
// scoping off for a single-team cluster.
type TracePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TracePolicySpec `json:"spec"`
	// +optional
	Status TracePolicyStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// TracePolicyList is a list of TracePolicies.
type TracePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TracePolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TracePolicy{}, &TracePolicyList{})
}
