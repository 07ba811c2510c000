package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeliveryStatus of one (message, recipient) row.
// +kubebuilder:validation:Enum=Delivered;Pending;Expanded;Failed;Quarantined;FilteredAsSpam;GettingStatus
type DeliveryStatus string

// Direction of a message relative to the organisation.
// +kubebuilder:validation:Enum=Inbound;Outbound;Internal;All
type Direction string

// SubjectMatch says how a subject filter compares.
// +kubebuilder:validation:Enum=Contains;StartsWith;EndsWith
type SubjectMatch string

// AddressPattern is an e-mail address in which `*` matches any run of
// characters: `user@example.com`, `*@example.com`, `user@*`, `*@*.example.com`,
// or `*` alone. Matching is case-insensitive.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=320
// +kubebuilder:validation:XValidation:rule="self == '*' || (self.matches('^[^@]+@[^@]+$') && !self.contains(' '))",message="an address pattern must look like local@domain (each side may use * as a wildcard), or be * alone"
type AddressPattern string

// IPOrCIDR is an IPv4 or IPv6 address, or a CIDR such as 203.0.113.0/24.
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="isIP(self) || isCIDR(self)",message="must be an IP address or a CIDR, such as 203.0.113.7 or 203.0.113.0/24"
type IPOrCIDR string

// SubjectFilter selects messages by subject, case-insensitively.
type SubjectFilter struct {
	// Value to look for in the subject.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Value string `json:"value"`
	// Match says where Value must stand: Contains (default), StartsWith or EndsWith.
	// +kubebuilder:default=Contains
	// +optional
	Match SubjectMatch `json:"match,omitempty"`
}

// MessageTraceSpec says which messages to trace. Every filter is optional;
// filters combine with AND, values inside one list with OR. The spec is
// immutable: to trace something else, create another MessageTrace.
// +kubebuilder:validation:XValidation:rule="!(has(self.window) && (has(self.startTime) || has(self.endTime)))",message="window is relative to the trace's creation and cannot be combined with startTime or endTime"
// +kubebuilder:validation:XValidation:rule="!has(self.endTime) || has(self.startTime)",message="endTime requires startTime"
// +kubebuilder:validation:XValidation:rule="!has(self.startTime) || !has(self.endTime) || timestamp(self.endTime) > timestamp(self.startTime)",message="endTime must be after startTime"
// +kubebuilder:validation:XValidation:rule="!has(self.startTime) || !has(self.endTime) || timestamp(self.endTime) - timestamp(self.startTime) <= duration('2160h')",message="the time range can be at most 90 days (2160h)"
type MessageTraceSpec struct {
	// SenderAddresses: messages from any of these addresses (wildcards allowed).
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	SenderAddresses []AddressPattern `json:"senderAddresses,omitempty"`
	// RecipientAddresses: messages to any of these addresses (wildcards allowed).
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	RecipientAddresses []AddressPattern `json:"recipientAddresses,omitempty"`

	// StartTime is the start of an absolute time range (received time, inclusive).
	// Without EndTime the range ends when the trace is created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// EndTime is the end of an absolute time range (exclusive); requires StartTime.
	// +optional
	EndTime *metav1.Time `json:"endTime,omitempty"`
	// Window is a relative time range ending when the trace is created, such as
	// 48h, 90m, 7d or 1d12h (days, hours, minutes, seconds in that order).
	// Without StartTime and Window the last 48 hours are traced. At most 90d.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:XValidation:rule="self != '' && self.matches('^([0-9]{1,4}([.][0-9]{1,6})?d)?([0-9]{1,6}([.][0-9]{1,5})?h)?([0-9]{1,7}([.][0-9]{1,4})?m)?([0-9]{1,9}([.][0-9]{1,3})?s)?$') && [(self.contains('d') ? int(double(self.substring(0, self.indexOf('d'))) * 86400.0) * 1000 + (self.endsWith('d') ? 0 : duration(self.substring(self.indexOf('d') + 1)).getMilliseconds()) : duration(self).getMilliseconds())].all(ms, ms > 0 && ms <= 7776000000)",message="window must be a duration such as 48h, 90m or 7d, at most 90d"
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`

	// DeliveryStatuses: messages whose status is any of these.
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	// +optional
	DeliveryStatuses []DeliveryStatus `json:"deliveryStatuses,omitempty"`

	// MessageID is the Message-ID header, with or without angle brackets.
	// +kubebuilder:validation:MaxLength=998
	// +optional
	MessageID string `json:"messageId,omitempty"`
	// MessageTraceID is mailtrace's own id of one message.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	MessageTraceID string `json:"messageTraceId,omitempty"`

	// Direction: Inbound (to the organisation from outside), Outbound (from it
	// to outside), Internal, or All (default).
	// +kubebuilder:default=All
	// +optional
	Direction Direction `json:"direction,omitempty"`

	// OriginalClientIP is the IP (or CIDR) that first handed the message to the organisation.
	// +optional
	OriginalClientIP IPOrCIDR `json:"originalClientIP,omitempty"`
	// FromIP is the IP (or CIDR) the message was received from.
	// +optional
	FromIP IPOrCIDR `json:"fromIP,omitempty"`
	// ToIP is the IP (or CIDR) the message was sent to.
	// +optional
	ToIP IPOrCIDR `json:"toIP,omitempty"`

	// Subject filters by subject.
	// +optional
	Subject *SubjectFilter `json:"subject,omitempty"`

	// Notify asks to be told when the trace finishes (succeeded or failed):
	// a signed webhook and/or an email. Delivery is recorded in
	// status.notifications; a failed notification never fails the trace.
	// +optional
	Notify *NotifySpec `json:"notify,omitempty"`

	// ResultLimit is the most result rows written into status (default 500, at
	// most 1000). Rows are also cut to keep the object small; status.truncated
	// says when there were more.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=500
	// +optional
	ResultLimit int32 `json:"resultLimit,omitempty"`

	// Report asks for a CSV report and says where it goes and what it holds.
	// A report is made when the range is longer than the operator's status
	// threshold (10 days by default), when more rows match than status holds,
	// or when report.always is true. Without this section the operator's
	// default report store and a Summary report are used.
	// +optional
	Report *ReportSpec `json:"report,omitempty"`
	// Details asks for one message's event timeline, for one recipient or
	// for all of them (like Get-MessageTraceDetailV2): the trace then
	// answers with status.details only (no rows, no counts, no report). The
	// other filters stay valid but are not applied; the timeline is read
	// within the namespace's TracePolicy grants, like rows.
	// +optional
	Details *DetailsSpec `json:"details,omitempty"`
	// Continue is the status.continue token of an earlier trace with the
	// same filters: this trace answers with the page of rows that follows
	// that trace's last row (as a Kubernetes list's continue token), over
	// the earlier trace's time range (the token carries it: startTime,
	// endTime and window are not used). A token of a trace with other
	// filters fails InvalidSpec. No report is made unless report.always.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Continue string `json:"continue,omitempty"`
	// TTLSecondsAfterFinished deletes the MessageTrace this long after it
	// finished (like a Job's). Unset: it is kept.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// EventType names what happened to a message: Receive, Submit, Resolve,
// Redirect, Transfer, Send, Notify, Scan, Sieve, Deliver, Save, Defer,
// Fail, Expand, Quarantine, FilterAsSpam (sources may add more).
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z]*$`
type EventType string

// DetailsSpec names one message and, optionally, one of its recipients.
// +kubebuilder:validation:XValidation:rule="has(self.messageTraceId)",message="details needs messageTraceId (a row's messageTraceId); recipient is optional"
type DetailsSpec struct {
	// MessageTraceID is mailtrace's id of the message (a row's messageTraceId).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	MessageTraceID string `json:"messageTraceId,omitempty"`
	// Recipient is the recipient address whose timeline is wanted. Empty:
	// every recipient's timeline (those visible within the namespace's
	// grants), each event naming its recipient. An address that is not
	// one of the message's recipients fails the trace NotARecipient.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=320
	// +optional
	Recipient string `json:"recipient,omitempty"`
	// Events keeps only events of these types (like
	// Get-MessageTraceDetailV2's -Event), such as Receive, Deliver, Fail,
	// Defer. Empty: every event.
	// +kubebuilder:validation:MaxItems=20
	// +listType=set
	// +optional
	Events []EventType `json:"events,omitempty"`
}

// MessageEvent is one event of a message's timeline for one recipient.
type MessageEvent struct {
	// Time the event happened (UTC).
	Time metav1.Time `json:"time"`
	// Event type: Receive, Submit, Defer, Deliver, Fail, Expand, ...
	Event string `json:"event"`
	// Recipient the event concerns; empty for the message's own events
	// (Receive, Submit, ...).
	// +optional
	Recipient string `json:"recipient,omitempty"`
	// Detail is human-readable text (cut to 512 characters; truncated says so).
	// +optional
	Detail string `json:"detail,omitempty"`
	// Source names the program that logged it (smtpd, smtp, qmgr, ...).
	// +optional
	Source string `json:"source,omitempty"`
	// +optional
	ServerHostname string `json:"serverHostname,omitempty"`
	// +optional
	ServerIP string `json:"serverIP,omitempty"`
	// +optional
	ClientHostname string `json:"clientHostname,omitempty"`
	// +optional
	ClientIP string `json:"clientIP,omitempty"`
	// Relay is the next hop, such as mx.example.org[192.0.2.10]:25.
	// +optional
	Relay string `json:"relay,omitempty"`
	// DSN is the delivery status code, such as 5.1.1.
	// +optional
	DSN string `json:"dsn,omitempty"`
	// SMTPResponse is what the remote server said (cut to 512 characters).
	// +optional
	SMTPResponse string `json:"smtpResponse,omitempty"`
	// FromIP the message was received from.
	// +optional
	FromIP string `json:"fromIP,omitempty"`
	// ToIP the message was sent to.
	// +optional
	ToIP string `json:"toIP,omitempty"`
	// ExpandedFrom is the group or alias this recipient came from.
	// +optional
	ExpandedFrom string `json:"expandedFrom,omitempty"`
	// SpamAction is what a content scanner (rspamd, amavis) decided: "add
	// header", "reject", "soft reject", "Passed CLEAN", "Blocked SPAM".
	// +optional
	SpamAction string `json:"spamAction,omitempty"`
	// SpamScore is the scanner's score, with its threshold where it gives
	// one ("6.00/15.00"), or amavis' hits.
	// +optional
	SpamScore string `json:"spamScore,omitempty"`
	// SpamSymbols are the scanner's rules that fired (at most 20, each cut
	// to 64 characters; truncated says so).
	// +optional
	// +kubebuilder:validation:MaxItems=20
	SpamSymbols []string `json:"spamSymbols,omitempty"`
	// Folder is the mailbox folder the recipient's copy was stored into
	// (Dovecot's LMTP or LDA, a Sieve fileinto): "INBOX", "Junk".
	// +optional
	Folder string `json:"folder,omitempty"`
	// Truncated is true when detail, smtpResponse or spamSymbols was cut.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
}

// MessageDetailsStatus is the answer to spec.details.
type MessageDetailsStatus struct {
	// MessageTraceID of the message.
	MessageTraceID string `json:"messageTraceId"`
	// Recipient whose timeline this is; empty when spec.details named none
	// (then Recipients lists whose timelines the events hold).
	// +optional
	Recipient string `json:"recipient,omitempty"`
	// Recipients whose timelines the events hold, when spec.details named
	// no recipient: the message's recipients visible within the
	// namespace's grants.
	// +listType=atomic
	// +optional
	Recipients []string `json:"recipients,omitempty"`
	// TotalEvents is the number of events the store holds for them (within
	// the namespace's grants); zero when the message is unknown or not visible.
	// +optional
	TotalEvents int32 `json:"totalEvents,omitempty"`
	// Truncated is true when status holds fewer events than TotalEvents
	// (at most 200, and a byte budget): the latest events are kept.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
	// Events in time order, oldest first.
	// +listType=atomic
	// +optional
	Events []MessageEvent `json:"events,omitempty"`
}

// ReportType is the kind of CSV report.
// +kubebuilder:validation:Enum=Summary;Detailed
type ReportType string

// ReportDeletionPolicy says what happens to the report object when its MessageTrace is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type ReportDeletionPolicy string

// Report types and deletion policies.
const (
	ReportSummary  ReportType           = "Summary"
	ReportDetailed ReportType           = "Detailed"
	ReportRetain   ReportDeletionPolicy = "Retain"
	ReportDelete   ReportDeletionPolicy = "Delete"
)

// ReportSpec says how a trace's CSV report is made.
type ReportSpec struct {
	// StoreName is a ReportStore in the trace's namespace (a MessageTrace
	// never uses another namespace's). Empty: the operator's default report
	// store (set at install time).
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.contains('/')",message="storeName is the name of a ReportStore in the MessageTrace's own namespace, not namespace/name: a MessageTrace cannot use another namespace's ReportStore"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="storeName must be a ReportStore name (lower-case letters, digits, '-' and '.')"
	// +optional
	StoreName string `json:"storeName,omitempty"`
	// Type is Summary (one row per message and recipient, the default) or
	// Detailed (one row per event).
	// +kubebuilder:default=Summary
	// +optional
	Type ReportType `json:"type,omitempty"`
	// Gzip compresses the report (messagetrace.csv.gz, Content-Encoding gzip).
	// +optional
	Gzip bool `json:"gzip,omitempty"`
	// Always makes a report even when the answer fits in status.
	// +optional
	Always bool `json:"always,omitempty"`
	// DeletionPolicy: Retain (default) keeps the report object when the
	// MessageTrace is deleted; Delete removes it (best effort: a store that
	// is gone or keeps failing never blocks the deletion for long).
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy ReportDeletionPolicy `json:"deletionPolicy,omitempty"`
}

// ReportPhase is where a report stands.
type ReportPhase string

// Report phases.
const (
	ReportPhaseRunning   ReportPhase = "Running"
	ReportPhaseRetrying  ReportPhase = "Retrying"
	ReportPhaseCompleted ReportPhase = "Completed"
	ReportPhaseFailed    ReportPhase = "Failed"
)

// ReportStatus references the uploaded report. It never holds a presigned
// URL: readers fetch the object with their own credentials.
type ReportStatus struct {
	// Phase: Running, Retrying, Completed or Failed.
	// +optional
	Phase ReportPhase `json:"phase,omitempty"`
	// Store is the ReportStore's name; empty for the operator's default store.
	// +optional
	Store string `json:"store,omitempty"`
	// Endpoint of the S3 API.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Bucket holding the report.
	Bucket string `json:"bucket"`
	// Key of the object in the bucket (with the store's prefix).
	Key string `json:"key"`
	// Type of the report.
	// +optional
	Type ReportType `json:"type,omitempty"`
	// Rows is the number of data rows of the finished report (header not counted).
	// +optional
	Rows int64 `json:"rows,omitempty"`
	// RowsWritten is the progress of a running export, updated every few seconds.
	// +optional
	RowsWritten int64 `json:"rowsWritten,omitempty"`
	// Bytes of the object.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// SHA256 of the object's bytes (hex).
	// +optional
	SHA256 string `json:"sha256,omitempty"`
	// ContentType of the object.
	// +optional
	ContentType string `json:"contentType,omitempty"`
	// ContentEncoding of the object: gzip or empty.
	// +optional
	ContentEncoding string `json:"contentEncoding,omitempty"`
	// Attempts counts the exports started.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// RetryAfter is when the next export attempt may start.
	// +optional
	RetryAfter *metav1.Time `json:"retryAfter,omitempty"`
	// LastError is the reason of the last failed attempt.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// TimeRange is the resolved range a trace covered.
type TimeRange struct {
	// Start of the range (inclusive).
	Start metav1.Time `json:"start"`
	// End of the range (exclusive).
	End metav1.Time `json:"end"`
	// Duration of the range, for reading, such as 48h.
	Duration string `json:"duration"`
}

// StatusCounts counts matching rows per delivery status.
type StatusCounts struct {
	Delivered      int64 `json:"delivered,omitempty"`
	Pending        int64 `json:"pending,omitempty"`
	Expanded       int64 `json:"expanded,omitempty"`
	Failed         int64 `json:"failed,omitempty"`
	Quarantined    int64 `json:"quarantined,omitempty"`
	FilteredAsSpam int64 `json:"filteredAsSpam,omitempty"`
	GettingStatus  int64 `json:"gettingStatus,omitempty"`
}

// TraceRow is one (message, recipient) result, newest first.
type TraceRow struct {
	// Received is when the message was received (UTC).
	Received metav1.Time `json:"received"`
	// Sender address.
	Sender string `json:"sender,omitempty"`
	// Recipient address; empty while a message's recipients are not known yet.
	Recipient string `json:"recipient,omitempty"`
	// Subject, first 256 characters.
	Subject string `json:"subject,omitempty"`
	// Status of delivery to this recipient.
	Status DeliveryStatus `json:"status"`
	// MessageID is the Message-ID header.
	MessageID string `json:"messageId,omitempty"`
	// MessageTraceID is mailtrace's id of the message.
	MessageTraceID string `json:"messageTraceId"`
	// Size in bytes.
	Size int64 `json:"size,omitempty"`
	// FromIP the message was received from.
	FromIP string `json:"fromIP,omitempty"`
	// ToIP the message was sent to.
	ToIP string `json:"toIP,omitempty"`
	// Direction of the message.
	Direction Direction `json:"direction,omitempty"`
	// Folder is the mailbox folder the recipient's copy was stored into
	// (Dovecot's LMTP or LDA, a Sieve fileinto: "INBOX", "Junk"), that of
	// its latest Save event; empty when no mailbox server's line told it.
	// +optional
	Folder string `json:"folder,omitempty"`
}

// MessageTraceStatus is the answer. The controller writes it; nothing else should.
type MessageTraceStatus struct {
	// Phase summarises the conditions: Pending, Running, Succeeded or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Conditions: Succeeded, Failed, StoreAvailable.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status answers.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// TimeRange is the resolved range the trace covers.
	// +optional
	TimeRange *TimeRange `json:"timeRange,omitempty"`
	// StartTime is when the controller first ran the trace.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the trace finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Attempts counts runs that failed to reach the store.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Counts of matching rows per delivery status.
	// +optional
	Counts *StatusCounts `json:"counts,omitempty"`
	// TotalMatches is the number of matching rows.
	// +optional
	TotalMatches int64 `json:"totalMatches,omitempty"`
	// ReturnedRows is len(rows).
	// +optional
	ReturnedRows int32 `json:"returnedRows,omitempty"`
	// Truncated is true when more rows matched than status holds.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
	// Continue, when more rows follow the last one in status, is the token
	// of the next page (as a Kubernetes list's continue): create a
	// MessageTrace with the same filters and spec.continue set to it.
	// +optional
	Continue string `json:"continue,omitempty"`
	// Notifications records the delivery of what spec.notify asked for.
	// +optional
	Notifications *NotificationsStatus `json:"notifications,omitempty"`
	// Rows are the newest matching rows, newest first.
	// +listType=atomic
	// +optional
	Rows []TraceRow `json:"rows,omitempty"`
	// Report references the CSV report, when the trace makes one.
	// +optional
	Report *ReportStatus `json:"report,omitempty"`
	// Details is the event timeline spec.details asked for.
	// +optional
	Details *MessageDetailsStatus `json:"details,omitempty"`
}

// MessageTrace follows messages through the organisation's mail flow: it
// runs once against the trace store and writes its answer into status.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mt,categories=mailtrace
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Range",type=string,JSONPath=`.status.timeRange.duration`
// +kubebuilder:printcolumn:name="Matches",type=integer,JSONPath=`.status.totalMatches`
// +kubebuilder:printcolumn:name="Shown",type=integer,JSONPath=`.status.returnedRows`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.counts.failed`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.counts.pending`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].reason`
// +kubebuilder:printcolumn:name="Report",type=string,JSONPath=`.status.report.phase`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MessageTrace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which messages to trace. Every filter is optional; filters
	// combine with AND, values inside one list with OR. The spec is immutable:
	// to trace something else, create another MessageTrace. It defaults to
	// empty, so a spec cannot be added later to an object created without one.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new MessageTrace to trace something else"
	// +kubebuilder:default={}
	// +optional
	Spec   MessageTraceSpec   `json:"spec,omitempty"`
	Status MessageTraceStatus `json:"status,omitempty"`
}

// MessageTraceList is a list of MessageTraces.
// +kubebuilder:object:root=true
type MessageTraceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MessageTrace `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MessageTrace{}, &MessageTraceList{})
}
