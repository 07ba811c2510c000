package messagetrace

import (
	"time"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/controllerkit"
)

// Defaults of Options.
const (
	DefaultQueryTimeout            = 30 * time.Second
	DefaultStatusRangeLimit        = 10 * 24 * time.Hour
	DefaultMaxStatusBytes          = 256 << 10
	DefaultMaxConcurrentReconciles = 2
	DefaultRetryBackoff            = 5 * time.Second
	DefaultMaxRetryBackoff         = 5 * time.Minute
	DefaultMaxReportAttempts       = 5
	DefaultProgressInterval        = 5 * time.Second
	DefaultDeletionTimeout         = 10 * time.Minute
	DefaultUploadBuffers           = 2
	DefaultReportPageSize          = 5000
)

// Options tune the reconciler. Zero values take the defaults above.
type Options struct {
	// QueryTimeout bounds one run against the store (count and rows).
	QueryTimeout time.Duration
	// StatusRangeLimit is the longest range answered in status; longer ranges need a report.
	StatusRangeLimit time.Duration
	// MaxStatusBytes is the byte budget of the rows in status (their JSON).
	MaxStatusBytes int
	// MaxConcurrentReconciles is how many traces run at once.
	MaxConcurrentReconciles int
	// RetryBackoff is the wait after the first failure to reach the store; it doubles per failure.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the wait between retries.
	MaxRetryBackoff time.Duration

	// Workers is the size of the report export pool (DefaultWorkers).
	Workers int
	// MaxReportAttempts bounds the export attempts of one trace, interrupted ones included.
	MaxReportAttempts int32
	// ProgressInterval is how often the rows written by a running export go to status.
	ProgressInterval time.Duration
	// ReportPageSize is the page size of the store reads of an export
	// (DefaultReportPageSize: few enough queries over a partitioned store,
	// and three pages in memory are still a few MiB).
	ReportPageSize int
	// PartSize of report uploads (objectstore.DefaultPartSize).
	PartSize int64
	// UploadBuffers of report uploads (DefaultUploadBuffers): parts held at
	// once, so writing the CSV and sending a part overlap.
	UploadBuffers int
	// ObjectStoreMaxRetries of one object-store request (minio-go's default when 0).
	ObjectStoreMaxRetries int
	// DeletionTimeout is how long the finalizer tries to delete a report before giving up.
	DeletionTimeout time.Duration
	// AutosaveKeep is how many autosaved queries of one user a namespace
	// keeps (v1alpha1.DefaultAutosaveKeep).
	AutosaveKeep int
}

func (o Options) withDefaults() Options {
	controllerkit.Default(&o.QueryTimeout, DefaultQueryTimeout)
	controllerkit.Default(&o.StatusRangeLimit, DefaultStatusRangeLimit)
	controllerkit.Default(&o.RetryBackoff, DefaultRetryBackoff)
	controllerkit.Default(&o.MaxRetryBackoff, DefaultMaxRetryBackoff)
	controllerkit.Default(&o.ProgressInterval, DefaultProgressInterval)
	controllerkit.Default(&o.DeletionTimeout, DefaultDeletionTimeout)
	controllerkit.Default(&o.MaxReportAttempts, DefaultMaxReportAttempts)
	controllerkit.Default(&o.Workers, DefaultWorkers)
	controllerkit.Default(&o.ReportPageSize, DefaultReportPageSize)
	controllerkit.Default(&o.UploadBuffers, DefaultUploadBuffers)
	controllerkit.Default(&o.MaxStatusBytes, DefaultMaxStatusBytes)
	controllerkit.Default(&o.MaxConcurrentReconciles, DefaultMaxConcurrentReconciles)
	controllerkit.Default(&o.AutosaveKeep, v1alpha1.DefaultAutosaveKeep)
	return o
}
