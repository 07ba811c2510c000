package messagetraceschedule

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// scheduleActions counts what schedules did, by the reason of the Event that
// tells it: RunCreated, RunAdopted, RunSkipped, RunReplaced, MissedSchedule,
// RunNow, InvalidSchedule.
var scheduleActions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mailtrace_schedule_actions_total",
	Help: "What MessageTraceSchedules did, by reason: RunCreated, RunAdopted, RunSkipped, RunReplaced, MissedSchedule, RunNow, InvalidSchedule.",
}, []string{"reason"})

func init() {
	metrics.Registry.MustRegister(scheduleActions)
}
