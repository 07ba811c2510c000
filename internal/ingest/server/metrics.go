package server

import (
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingester's Prometheus metrics.
type Metrics struct {
	LinesRead     *prometheus.CounterVec // by transport
	NotUnderstood *prometheus.CounterVec // by reason
	EventsWritten prometheus.Counter
	StoreErrors   prometheus.Counter
	Lag           prometheus.Histogram
	QueueDepth    prometheus.Gauge
	StateSaves    *prometheus.CounterVec // by result
	Refused       *prometheus.CounterVec // by reason and transport
	// the write-ahead log
	WALBytes    prometheus.Gauge
	WALSegments prometheus.Gauge
	WALBacklog  prometheus.Gauge
	WALFsync    prometheus.Histogram
	WALReplayed prometheus.Counter
	WALRefused  *prometheus.CounterVec // by reason (full, error)
	WALSkipped  prometheus.Counter
	// the correlator's cap on messages in flight
	Evicted prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered). A collector already registered under the same name (a
// second ingester in one process, tests) is reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		LinesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailtrace_ingest_lines_read_total",
			Help: "Log lines read, by transport (tcp, tls, udp, http, file).",
		}, []string{"transport"}),
		NotUnderstood: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailtrace_ingest_lines_not_understood_total",
			Help: "Lines (or requests) skipped, by reason.",
		}, []string{"reason"}),
		EventsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailtrace_ingest_events_written_total",
			Help: "Trace events appended to the store.",
		}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailtrace_ingest_store_errors_total",
			Help: "Failed appends to the trace store (each is retried).",
		}),
		Lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailtrace_ingest_lag_seconds",
			Help:    "Time from an event's log timestamp to the moment it was queryable in the store (live ingest only).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900},
		}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailtrace_ingest_queue_depth",
			Help: "Lines read and waiting for the correlator.",
		}),
		StateSaves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailtrace_ingest_state_saves_total",
			Help: "Correlator state saves, by result (ok, error).",
		}, []string{"result"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailtrace_ingest_refused_total",
			Help: "Connections and requests refused before a line was read, by reason (unauthorized, tls handshake failed, too many connections) and transport.",
		}, []string{"reason", "transport"}),
		WALBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailtrace_ingest_wal_bytes",
			Help: "Bytes the write-ahead log holds (capped by --wal-max-bytes).",
		}),
		WALSegments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailtrace_ingest_wal_segments",
			Help: "Segment files of the write-ahead log.",
		}),
		WALBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailtrace_ingest_wal_backlog_bytes",
			Help: "Bytes of the write-ahead log accepted but not yet read by the correlator (grows while the store is slow or down).",
		}),
		WALFsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailtrace_ingest_wal_fsync_seconds",
			Help:    "Time of each fsync of the write-ahead log (one covers every request waiting for it).",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5},
		}),
		WALReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailtrace_ingest_wal_replayed_lines_total",
			Help: "Lines read again from the write-ahead log at start (accepted after the last checkpoint).",
		}),
		WALRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailtrace_ingest_wal_refused_total",
			Help: "Requests and chunks of lines the write-ahead log could not take, by reason (full: at --wal-max-bytes; error: the disk's), so nothing of them was accepted.",
		}, []string{"reason"}),
		WALSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailtrace_ingest_wal_skipped_bytes_total",
			Help: "Bytes of the write-ahead log skipped at replay because they were damaged.",
		}),
		Evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailtrace_ingest_messages_evicted_total",
			Help: "Messages the correlator evicted from memory over --max-messages-in-flight (their events emitted as they stood; a compact record kept for late lines).",
		}),
	}
	if reg != nil {
		m.Evicted = register(reg, m.Evicted)
		m.WALBytes = register(reg, m.WALBytes)
		m.WALSegments = register(reg, m.WALSegments)
		m.WALBacklog = register(reg, m.WALBacklog)
		m.WALFsync = register(reg, m.WALFsync)
		m.WALReplayed = register(reg, m.WALReplayed)
		m.WALRefused = register(reg, m.WALRefused)
		m.WALSkipped = register(reg, m.WALSkipped)
		m.LinesRead = register(reg, m.LinesRead)
		m.NotUnderstood = register(reg, m.NotUnderstood)
		m.EventsWritten = register(reg, m.EventsWritten)
		m.StoreErrors = register(reg, m.StoreErrors)
		m.Lag = register(reg, m.Lag)
		m.QueueDepth = register(reg, m.QueueDepth)
		m.StateSaves = register(reg, m.StateSaves)
		m.Refused = register(reg, m.Refused)
	}
	return m
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
	}
	return c
}

// rateLog logs at most one message per key and interval, saying how many
// were suppressed in between: bad input is counted always, logged rarely.
type rateLog struct {
	log   logr.Logger
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	quiet map[string]int
}

func newRateLog(log logr.Logger, every time.Duration) *rateLog {
	return &rateLog{log: log, every: every, last: map[string]time.Time{}, quiet: map[string]int{}}
}

func (r *rateLog) Info(key, msg string, kv ...any) {
	r.mu.Lock()
	now := time.Now()
	if t, ok := r.last[key]; ok && now.Sub(t) < r.every {
		r.quiet[key]++
		r.mu.Unlock()
		return
	}
	n := r.quiet[key]
	r.last[key], r.quiet[key] = now, 0
	r.mu.Unlock()
	r.log.Info(msg, append(kv, "suppressedSinceLast", n)...)
}

// sample shortens a bad line for a log message.
func sample(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
