package v1alpha1

// ConditionType names a condition of a mailtrace object.
type ConditionType string

// Condition types of a MessageTrace. A MessageTrace runs once:
// `kubectl wait --for=condition=Succeeded mt/NAME` returns when it has an answer.
const (
	// ConditionSucceeded is True once the trace has its answer; False with a
	// reason while it cannot get one yet or when it has failed for good.
	ConditionSucceeded ConditionType = "Succeeded"
	// ConditionFailed is True when the trace has failed for good.
	ConditionFailed ConditionType = "Failed"
	// ConditionStoreAvailable tells whether the trace store answered the last attempt.
	ConditionStoreAvailable ConditionType = "StoreAvailable"
	// ConditionAvailable is the condition of a ReportStore: True when the last
	// check could reach it, find its bucket and write to it.
	ConditionAvailable ConditionType = "Available"
)

// Condition types of a MessageTraceSchedule.
const (
	// ConditionReady is True while the schedule is valid and running its ticks.
	ConditionReady ConditionType = "Ready"
)

// Reasons of a MessageTraceSchedule's Ready condition.
const (
	// ReasonScheduled: the schedule is valid and waits for its next tick.
	ReasonScheduled Reason = "Scheduled"
	// ReasonSuspended: spec.suspend is true; no tick runs.
	ReasonSuspended Reason = "Suspended"
	// ReasonInvalidSchedule: the cron schedule or time zone cannot be read.
	ReasonInvalidSchedule Reason = "InvalidSchedule"
	// ReasonOnDemand: the schedule has no spec.schedule: a saved query that
	// runs only when asked (the mailtrace.io/run-now annotation).
	ReasonOnDemand Reason = "OnDemand"
)

// Reason is the stable CamelCase reason of a condition.
type Reason string

// Condition reasons. They are part of the API: scripts and alerts match on them.
const (
	// ReasonCompleted: the trace ran and its answer is in status.
	ReasonCompleted Reason = "Completed"
	// ReasonRunning: the trace is being run.
	ReasonRunning Reason = "Running"
	// ReasonStoreUnavailable: the trace store did not answer; the trace is retried with backoff.
	ReasonStoreUnavailable Reason = "StoreUnavailable"
	// ReasonStoreAvailable: the trace store answered.
	ReasonStoreAvailable Reason = "StoreAvailable"
	// ReasonReplicaLagging: the trace store answered from a read replica further behind its
	// primary than the manager's --store-replica-max-lag; the newest messages may be missing.
	ReasonReplicaLagging Reason = "ReplicaLagging"
	// ReasonStartInFuture: the time range starts in the future; nothing can match. Terminal.
	ReasonStartInFuture Reason = "StartInFuture"
	// ReasonInvalidSpec: the spec is valid for the schema but not runnable. Terminal.
	ReasonInvalidSpec Reason = "InvalidSpec"
	// ReasonReportRequired: the trace needs a CSV report (its range is longer than
	// the status threshold), and this version cannot write reports yet.
	ReasonReportRequired Reason = "ReportRequired"
	// ReasonQueryFailed: the store refused the query for good. Terminal.
	ReasonQueryFailed Reason = "QueryFailed"
	// ReasonNotARecipient: spec.details names an address that is not one of
	// the message's recipients (visible within the namespace's grants). Terminal.
	ReasonNotARecipient Reason = "NotARecipient"

	// Reasons of reports (MessageTrace) and of a ReportStore's Available
	// condition. The object-store ones match objectstore.Reason.

	// ReasonExporting: the CSV report is being written to the report store.
	ReasonExporting Reason = "Exporting"
	// ReasonReportStoreNotFound: the named ReportStore does not exist (yet); the trace waits for it.
	ReasonReportStoreNotFound Reason = "ReportStoreNotFound"
	// ReasonNoDefaultReportStore: the trace uses the default report store and the operator has none.
	ReasonNoDefaultReportStore Reason = "NoDefaultReportStore"
	// ReasonReportStoreUnavailable: the named ReportStore is not Available; the trace waits for it.
	ReasonReportStoreUnavailable Reason = "ReportStoreUnavailable"
	// ReasonReportAttemptsExhausted: the export failed (or was interrupted) too many times. Terminal.
	ReasonReportAttemptsExhausted Reason = "ReportAttemptsExhausted"
	// ReasonChecked: the ReportStore was reachable, its bucket exists and a probe could be written.
	ReasonChecked Reason = "Checked"
	// ReasonCredentialsMissing: the credentials Secret (or a key of it) or the CA bundle is missing.
	ReasonCredentialsMissing Reason = "CredentialsMissing"
	// Object-store failures (objectstore.Reason).
	ReasonStoreUnreachable Reason = "StoreUnreachable"
	ReasonBucketMissing    Reason = "BucketMissing"
	// ReasonAccessDenied is also a MessageTrace's terminal reason when its
	// namespace is granted no addresses by any TracePolicy.
	ReasonAccessDenied  Reason = "AccessDenied"
	ReasonQuotaExceeded Reason = "QuotaExceeded"
	// ReasonDestinationNotAllowed: the endpoint resolves to an internal
	// address (loopback, link-local, private, ...) that no TracePolicy grants
	// the namespace. Also a notification's reason.
	ReasonDestinationNotAllowed Reason = "DestinationNotAllowed"
)

// Reasons of a notification delivery (status.notifications.*.reason).
const (
	// ReasonRecipientNotAllowed: an email recipient is outside the
	// namespace's grants (TracePolicy addresses and emailRecipients).
	ReasonRecipientNotAllowed Reason = "RecipientNotAllowed"
	// ReasonWebhookRejected: the webhook answered with a non-2xx HTTP status.
	ReasonWebhookRejected Reason = "WebhookRejected"
	// ReasonWebhookUnreachable: the webhook could not be reached (DNS,
	// connection, TLS, timeout; which one is not said).
	ReasonWebhookUnreachable Reason = "WebhookUnreachable"
	// ReasonSecretMissing: the Secret (or key) of secretRef or urlSecretRef is missing.
	ReasonSecretMissing Reason = "SecretMissing"
	// ReasonEmailFailed: the SMTP relay refused or could not take the email.
	ReasonEmailFailed Reason = "EmailFailed"
	// ReasonNoSMTPRelay: email notifications are not configured in the manager.
	ReasonNoSMTPRelay Reason = "NoSMTPRelay"
)

// Phase summarises the conditions for printer columns; it is derived from
// the conditions, never the other way round.
type Phase string

// Phases of a MessageTrace.
const (
	PhasePending   Phase = "Pending"
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
)

// Condition and reasons of a DownloadRequest (its Ready condition).
const (
	// ReasonURLIssued: status.downloadURL holds a presigned URL.
	ReasonURLIssued Reason = "URLIssued"
	// ReasonMessageTraceNotFound: the named MessageTrace does not exist in the request's namespace. Terminal.
	ReasonMessageTraceNotFound Reason = "MessageTraceNotFound"
	// ReasonReportPending: the trace's report is not finished yet; the request waits.
	ReasonReportPending Reason = "ReportPending"
	// ReasonNoReport: the trace finished without a report (its answer is in status). Terminal.
	ReasonNoReport Reason = "NoReport"
	// ReasonReportNotFound: the report object is not in its store (deleted or expired). Terminal.
	ReasonReportNotFound Reason = "ReportNotFound"
	// ReasonURLExpired: the URL has expired and was removed.
	ReasonURLExpired Reason = "URLExpired"
)
