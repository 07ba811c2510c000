package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConcurrencyPolicy says what a schedule does when a tick comes while an
// earlier run is still active.
// +kubebuilder:validation:Enum=Forbid;Replace;Allow
type ConcurrencyPolicy string

// Concurrency policies.
const (
	// ForbidConcurrent skips the tick (with an Event) while a run is active.
	ForbidConcurrent ConcurrencyPolicy = "Forbid"
	// ReplaceConcurrent deletes the active runs and starts the new one.
	ReplaceConcurrent ConcurrencyPolicy = "Replace"
	// AllowConcurrent starts the new run beside the active ones.
	AllowConcurrent ConcurrencyPolicy = "Allow"
)

// TemplateMetadata is the metadata a schedule gives each run: labels and
// annotations only (names are the controller's).
type TemplateMetadata struct {
	// Labels of each run; the controller adds only the parent label
	// mailtrace.io/schedule.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations of each run.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// MessageTraceTemplate describes the MessageTrace each run creates. Its spec
// is a MessageTraceSpec without a time range: each run traces the schedule's
// window ending at its tick, written into the run as startTime and endTime.
type MessageTraceTemplate struct {
	// Metadata: labels and annotations of each run.
	// +optional
	Metadata TemplateMetadata `json:"metadata,omitempty"`
	// Spec of each run, without startTime, endTime, window or continue.
	// +kubebuilder:validation:XValidation:rule="!has(self.startTime) && !has(self.endTime) && !has(self.window)",message="the template has no time range: each run traces the schedule's window ending at its tick; set spec.window of the schedule instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.continue)",message="the template has no continue token: each run answers the first page of its own range"
	// +optional
	Spec MessageTraceSpec `json:"spec,omitempty"`
}

// MessageTraceScheduleSpec says when to trace what. Without a schedule it
// is a saved query: it runs only on demand (each new value of the
// mailtrace.io/run-now annotation starts one run) and keeps the history of
// its runs like a scheduled one.
type MessageTraceScheduleSpec struct {
	// Schedule in 5-field cron format (minute hour day-of-month month
	// day-of-week), such as "0 7 * * 1" for Mondays at 07:00, or one of
	// @yearly, @monthly, @weekly, @daily, @hourly. Omitted: a saved query
	// that runs only on demand (annotation mailtrace.io/run-now).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ @]+( +[^ @]+){4})$')",message="schedule must have 5 cron fields (minute hour day-of-month month day-of-week, such as \"0 7 * * 1\") or be @yearly, @monthly, @weekly, @daily or @hourly; the time zone goes in timeZone"
	// +optional
	Schedule string `json:"schedule,omitempty"`

	// TimeZone is the IANA time zone the schedule is read in, such as
	// Europe/Berlin (default UTC).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:default=UTC
	// +optional
	TimeZone string `json:"timeZone,omitempty"`

	// Window is the range each run traces: [tick - window, tick), so runs
	// of a schedule whose window equals its period tile time with no gap
	// and no overlap. Written as 24h, 90m, 7d or 1d12h (days, hours, minutes,
	// seconds in that order); from 1m to 90d.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:XValidation:rule="self != '' && self.matches('^([0-9]{1,4}([.][0-9]{1,6})?d)?([0-9]{1,6}([.][0-9]{1,5})?h)?([0-9]{1,7}([.][0-9]{1,4})?m)?([0-9]{1,9}([.][0-9]{1,3})?s)?$') && [(self.contains('d') ? int(double(self.substring(0, self.indexOf('d'))) * 86400.0) * 1000 + (self.endsWith('d') ? 0 : duration(self.substring(self.indexOf('d') + 1)).getMilliseconds()) : duration(self).getMilliseconds())].all(ms, ms >= 60000 && ms <= 7776000000)",message="window must be a duration such as 24h, 90m or 7d, from 1m to 90d"
	Window metav1.Duration `json:"window"`

	// Template of the MessageTrace each run creates.
	Template MessageTraceTemplate `json:"template"`

	// ConcurrencyPolicy: Forbid (default) skips a tick while a run is
	// active, Replace deletes the active run and starts the new one, Allow
	// runs them side by side.
	// +kubebuilder:default=Forbid
	// +optional
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`

	// StartingDeadlineSeconds: a tick that could not start within this many
	// seconds (the manager was down) is missed, not run late. Without it a
	// late tick always runs. After downtime only the most recent missed
	// tick runs, never one per missed tick.
	// +kubebuilder:validation:Minimum=1
	// +optional
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// Suspend stops new ticks from running; active runs go on.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// SuccessfulRunsHistoryLimit is how many succeeded runs to keep (default
	// 10, the "last ten autosaved queries"). The newest succeeded run is
	// always kept.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=10
	// +optional
	SuccessfulRunsHistoryLimit *int32 `json:"successfulRunsHistoryLimit,omitempty"`

	// FailedRunsHistoryLimit is how many failed runs to keep (default 3).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=3
	// +optional
	FailedRunsHistoryLimit *int32 `json:"failedRunsHistoryLimit,omitempty"`
}

// RunReference names one run of a schedule.
type RunReference struct {
	// Name of the MessageTrace.
	Name string `json:"name"`
	// ScheduledTime is the tick the run traces up to (its endTime).
	ScheduledTime metav1.Time `json:"scheduledTime"`
}

// RunStatus is one run in a schedule's history.
type RunStatus struct {
	// Name of the MessageTrace.
	Name string `json:"name"`
	// ScheduledTime is the end of the range the run traces: its tick, or
	// when a run-now request started it.
	ScheduledTime metav1.Time `json:"scheduledTime"`
	// RunNow is true for a run started by the mailtrace.io/run-now annotation.
	// +optional
	RunNow bool `json:"runNow,omitempty"`
	// Phase of the MessageTrace: Pending, Running, Succeeded or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// CompletionTime is when the run finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// TotalMatches of the run.
	// +optional
	TotalMatches int64 `json:"totalMatches,omitempty"`
	// Reason of the run's Succeeded condition (Completed, a failure's reason, ...).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// MessageTraceScheduleStatus is what the controller knows of the schedule.
type MessageTraceScheduleStatus struct {
	// Conditions: Ready (reasons Scheduled, OnDemand, Suspended, InvalidSchedule).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status answers.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Active runs: created and not finished yet, oldest first.
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	Active []RunReference `json:"active,omitempty"`
	// LastScheduleTime is the most recent tick the controller handled: it
	// started (or adopted) its run, skipped it under Forbid, or found it
	// past the starting deadline. Ticks up to it are never run again.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// LastSuccessfulTime is when the newest succeeded run finished.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`
	// NextScheduleTime is the next tick (absent while suspended or invalid).
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// LastRunTime is when the newest run was started (a tick or run-now).
	// +optional
	LastRunTime *metav1.Time `json:"lastRunTime,omitempty"`
	// History lists the runs the schedule keeps (active and finished, within
	// the history limits), newest first; at most the newest 100.
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	History []RunStatus `json:"history,omitempty"`
	// LastRunNowToken is the last value of the mailtrace.io/run-now
	// annotation that started a run; a new value starts one more.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	LastRunNowToken string `json:"lastRunNowToken,omitempty"`
}

// MessageTraceSchedule runs a MessageTrace on a cron schedule: each tick
// creates a MessageTrace from the template covering the window that ends at
// the tick. Without a schedule it is a saved query, run on demand. Deleting
// the schedule deletes its runs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mts,categories=mailtrace
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a schedule's name can be at most 63 characters: it is the value of its runs' mailtrace.io/schedule label"
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="TimeZone",type=string,JSONPath=`.spec.timeZone`
// +kubebuilder:printcolumn:name="Window",type=string,JSONPath=`.spec.window`,priority=1
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Last Schedule",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Last Run",type=date,JSONPath=`.status.lastRunTime`,priority=1
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MessageTraceSchedule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MessageTraceScheduleSpec   `json:"spec"`
	Status MessageTraceScheduleStatus `json:"status,omitempty"`
}

// MessageTraceScheduleList is a list of MessageTraceSchedules.
// +kubebuilder:object:root=true
type MessageTraceScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MessageTraceSchedule `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MessageTraceSchedule{}, &MessageTraceScheduleList{})
}
