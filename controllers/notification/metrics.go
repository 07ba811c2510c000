package notification

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// notifications counts delivery attempts by channel and result.
var notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mailtrace_notifications_total",
	Help: "Notification delivery attempts of finished MessageTraces, by channel (webhook, email) and result (delivered, retrying, failed).",
}, []string{"channel", "result"})

func init() {
	metrics.Registry.MustRegister(notifications)
}
