package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretReference names a Secret in the ReportStore's own namespace.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// KeyReference names one key of a Secret or a ConfigMap in the ReportStore's own namespace.
// +kubebuilder:validation:XValidation:rule="has(self.secretName) != has(self.configMapName)",message="set exactly one of secretName and configMapName"
type KeyReference struct {
	// SecretName is the Secret holding the key.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// ConfigMapName is the ConfigMap holding the key.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ConfigMapName string `json:"configMapName,omitempty"`
	// Key in the Secret's or ConfigMap's data (default ca.crt).
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=ca.crt
	// +optional
	Key string `json:"key,omitempty"`
}

// ReportStoreSpec says where CSV reports go: one bucket of an
// S3-compatible server (AWS S3, MinIO, Ceph RGW, R2, ...).
type ReportStoreSpec struct {
	// Endpoint is host[:port] or a URL (http:// or https://) of the S3 API.
	// Empty means AWS S3.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Bucket that receives the reports. It must exist; mailtrace never creates it.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`
	// Prefix of every report's key: <prefix>/<namespace>/<name>-<uid>/messagetrace.csv[.gz].
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// Region of the bucket; looked up when empty.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`
	// Insecure uses plain HTTP instead of HTTPS (an http:// endpoint implies it).
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// CABundle names PEM certificates, in a Secret or ConfigMap of this
	// namespace, trusted in addition to the system's (for a private CA).
	// +optional
	CABundle *KeyReference `json:"caBundle,omitempty"`
	// CredentialsSecretRef names a Secret of this namespace with the keys
	// accessKeyID and secretAccessKey (and optionally sessionToken).
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`
	// ServerSideEncryption asks for SSE: AES256 (SSE-S3) or aws:kms:<key-id>
	// (SSE-KMS). Empty: the bucket's default applies.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self == 'AES256' || self.startsWith('aws:kms:')",message="serverSideEncryption must be AES256 or aws:kms:<key-id>"
	// +optional
	ServerSideEncryption string `json:"serverSideEncryption,omitempty"`
}

// ReportStoreStatus says whether the store can take reports.
type ReportStoreStatus struct {
	// Conditions: Available.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the last check answers.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// LastCheckTime is when the store was last checked.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
}

// ReportStore is a bucket of an S3-compatible server where MessageTraces of
// its namespace upload their CSV reports. The controller checks it (reachable,
// bucket exists, credentials may write) and rechecks it periodically.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rs,categories=mailtrace
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpoint`
// +kubebuilder:printcolumn:name="Bucket",type=string,JSONPath=`.spec.bucket`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ReportStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ReportStoreSpec   `json:"spec"`
	Status ReportStoreStatus `json:"status,omitempty"`
}

// ReportStoreList is a list of ReportStores.
// +kubebuilder:object:root=true
type ReportStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ReportStore `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ReportStore{}, &ReportStoreList{})
}
