package messagetrace

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Prometheus metrics, served by the manager's metrics endpoint.
var (
	traceDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mailtrace_trace_duration_seconds",
		Help:    "Time a MessageTrace spent querying the trace store (count and rows), successful runs only.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms .. ~41s
	})
	traceRows = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mailtrace_trace_rows",
		Help:    "Rows matching a MessageTrace (total matches, not only those shown in status).",
		Buckets: prometheus.ExponentialBuckets(1, 4, 11), // 1 .. ~1M
	})
	storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailtrace_store_errors_total",
		Help: "Trace store errors met while running MessageTraces (each is retried or fails the trace).",
	})
	tracesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailtrace_traces_total",
		Help: "MessageTraces finished, by result: succeeded, failed, report_required.",
	}, []string{"result"})
	reportErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailtrace_report_errors_total",
		Help: "Failed report export attempts, by reason (StoreUnreachable, AccessDenied, ...).",
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(traceDuration, traceRows, storeErrors, tracesTotal, reportErrors)
}
