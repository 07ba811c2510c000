package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// Labels and annotations of schedules and their runs.
const (
	// LabelSchedule is set on every run of a schedule, to the schedule's name.
	LabelSchedule = "mailtrace.io/schedule"
	// AnnotationRunNow on a schedule starts one run at once for each new value.
	AnnotationRunNow = "mailtrace.io/run-now"
)

// Defaults of the history limits.
const (
	DefaultSuccessfulRunsHistoryLimit = 10
	DefaultFailedRunsHistoryLimit     = 3
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Location returns the schedule's time zone (UTC when empty).
func (s *MessageTraceScheduleSpec) Location() (*time.Location, error) {
	tz := s.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if strings.EqualFold(tz, "local") {
		return nil, fmt.Errorf("timeZone %q: name an IANA time zone such as Europe/Berlin; Local depends on the machine", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("timeZone %q is not an IANA time zone such as Europe/Berlin or America/New_York", tz)
	}
	return loc, nil
}

// CronSchedule parses the schedule in its time zone.
func (s *MessageTraceScheduleSpec) CronSchedule() (cron.Schedule, error) {
	loc, err := s.Location()
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(strings.TrimSpace(s.Schedule), "@every") || strings.Contains(s.Schedule, "TZ=") {
		return nil, fmt.Errorf("schedule %q: use 5 cron fields, and timeZone for the time zone", s.Schedule)
	}
	sched, err := cronParser.Parse(s.Schedule)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %v", s.Schedule, err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("schedule %q is not a cron schedule", s.Schedule)
	}
	spec.Location = loc
	return spec, nil
}

// OnDemand reports whether the schedule is a saved query with no cron
// schedule: it runs only when the mailtrace.io/run-now annotation asks.
func (s *MessageTraceScheduleSpec) OnDemand() bool {
	return strings.TrimSpace(s.Schedule) == ""
}

// SuccessfulLimit returns the succeeded-run history limit with its default.
func (s *MessageTraceScheduleSpec) SuccessfulLimit() int {
	if s.SuccessfulRunsHistoryLimit == nil {
		return DefaultSuccessfulRunsHistoryLimit
	}
	return int(*s.SuccessfulRunsHistoryLimit)
}

// FailedLimit returns the failed-run history limit with its default.
func (s *MessageTraceScheduleSpec) FailedLimit() int {
	if s.FailedRunsHistoryLimit == nil {
		return DefaultFailedRunsHistoryLimit
	}
	return int(*s.FailedRunsHistoryLimit)
}

// StartingDeadline returns the starting deadline, or 0 when there is none.
func (s *MessageTraceScheduleSpec) StartingDeadline() time.Duration {
	if s.StartingDeadlineSeconds == nil {
		return 0
	}
	return time.Duration(*s.StartingDeadlineSeconds) * time.Second
}

// Policy returns the concurrency policy with its default.
func (s *MessageTraceScheduleSpec) Policy() ConcurrencyPolicy {
	if s.ConcurrencyPolicy == "" {
		return ForbidConcurrent
	}
	return s.ConcurrencyPolicy
}

// RunName is the deterministic name of the run of schedule for tick:
// <schedule>-<unix minutes of the tick>, so a retry finds the run it
// created instead of creating another.
func RunName(schedule string, tick time.Time) string {
	return fmt.Sprintf("%s-%d", schedule, tick.Unix()/60)
}

// UnmarshalJSON reads the spec as the API machinery does, and its window in
// days too (window: 7d).
func (s *MessageTraceScheduleSpec) UnmarshalJSON(b []byte) error {
	type plain MessageTraceScheduleSpec
	aux := struct {
		*plain
		Window json.RawMessage `json:"window,omitempty"` // shadows plain's
	}{plain: (*plain)(s)}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, &aux); err != nil {
		return err
	}
	if len(aux.Window) == 0 {
		return nil
	}
	w, err := parseWindow(aux.Window)
	if err != nil {
		return err
	}
	if w == nil {
		w = &metav1.Duration{}
	}
	s.Window = *w
	return nil
}
