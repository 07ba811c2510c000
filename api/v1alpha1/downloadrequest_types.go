package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DownloadRequestSpec names the MessageTrace whose report is wanted.
type DownloadRequestSpec struct {
	// MessageTraceName is a MessageTrace in the request's own namespace
	// whose status.report is wanted.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	MessageTraceName string `json:"messageTraceName"`
	// TTL is how long the download URL stays valid: default 10m, at most 1h.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="ttl must be a duration between 1s and 1h, such as 10m"
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// DownloadRequestPhase is where a DownloadRequest stands.
// +kubebuilder:validation:Enum=Pending;Ready;Failed;Expired
type DownloadRequestPhase string

// DownloadRequest phases.
const (
	// DownloadPending: waiting for the trace's report.
	DownloadPending DownloadRequestPhase = "Pending"
	// DownloadReady: status.downloadURL can be fetched until status.expiration.
	DownloadReady DownloadRequestPhase = "Ready"
	// DownloadFailed: no URL can be made; the Ready condition says why.
	DownloadFailed DownloadRequestPhase = "Failed"
	// DownloadExpired: the URL has expired and was removed from status.
	DownloadExpired DownloadRequestPhase = "Expired"
)

// DownloadRequestStatus holds the presigned URL. The controller writes it.
type DownloadRequestStatus struct {
	// Phase: Pending, Ready, Failed or Expired.
	// +optional
	Phase DownloadRequestPhase `json:"phase,omitempty"`
	// DownloadURL is a presigned GET of the report, valid until Expiration.
	// Anyone holding it can download the report: treat it as a secret.
	// +optional
	DownloadURL string `json:"downloadURL,omitempty"`
	// Expiration is when DownloadURL stops working. The request itself is
	// deleted an hour later.
	// +optional
	Expiration *metav1.Time `json:"expiration,omitempty"`
	// Report describes the object (rows, bytes, sha256, encoding) as the
	// MessageTrace's status.report recorded it.
	// +optional
	Report *DownloadedReport `json:"report,omitempty"`
	// Conditions: Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status answers.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// DownloadedReport describes the report a DownloadRequest points at.
type DownloadedReport struct {
	// Rows of the report (header not counted).
	// +optional
	Rows int64 `json:"rows,omitempty"`
	// Bytes of the object.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// SHA256 of the object's bytes (hex).
	// +optional
	SHA256 string `json:"sha256,omitempty"`
	// ContentEncoding of the object: gzip or empty.
	// +optional
	ContentEncoding string `json:"contentEncoding,omitempty"`
	// Type of the report.
	// +optional
	Type ReportType `json:"type,omitempty"`
}

// DownloadRequest asks the operator for a short-lived URL to download a
// MessageTrace's report (like Velero's). Who may download is decided by who
// may create DownloadRequests in the namespace (the aggregated edit role).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mtdl,categories=mailtrace
// +kubebuilder:printcolumn:name="Trace",type=string,JSONPath=`.spec.messageTraceName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Expiration",type=date,JSONPath=`.status.expiration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DownloadRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new DownloadRequest"
	Spec   DownloadRequestSpec   `json:"spec"`
	Status DownloadRequestStatus `json:"status,omitempty"`
}

// DownloadRequestList is a list of DownloadRequests.
// +kubebuilder:object:root=true
type DownloadRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DownloadRequest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DownloadRequest{}, &DownloadRequestList{})
}
