package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TracePolicySpec grants namespaces the addresses their MessageTraces may see.
// +kubebuilder:validation:XValidation:rule="(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",message="a TracePolicy must select namespaces: list them in namespaces or give a namespaceSelector"
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
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +listType=set
	Addresses []AddressPattern `json:"addresses"`
}

// TracePolicyStatus is empty: a policy takes effect when a MessageTrace runs.
type TracePolicyStatus struct{}

// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=tp,categories=mailtrace
// +kubebuilder:printcolumn:name="Namespaces",type=string,JSONPath=`.spec.namespaces`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// TracePolicy is cluster-scoped and for cluster administrators: it grants
// namespaces (by name or by label selector) the address patterns their
// MessageTraces may see. A namespace's grant is the union of every policy
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
