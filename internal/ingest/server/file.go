package server

import (
	"context"
	"errors"
	"os"

	"github.com/go-logr/logr"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/store"
)

// BackfillBatchSize is the least number of events a backfill appends at
// once.
const BackfillBatchSize = 10000

// FileOptions configure a backfill.
type FileOptions struct {
	Pipeline PipelineOptions
	// MaxLineBytes: longer lines are skipped and counted (default 64 KiB).
	MaxLineBytes int
	Metrics      *Metrics
	Log          logr.Logger
}

// IngestFiles reads log files (plain or gzip, detected by content) in the
// order given, through one correlator, into st: give a host's rotated
// files oldest first (mail.log.2.gz mail.log.1 mail.log). At the end the
// held messages are released, unless a state file keeps them for a live
// ingester that goes on from there.
func IngestFiles(ctx context.Context, st store.Store, paths []string, o FileOptions) (ingest.Stats, error) {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = defaultMaxFrameBytes
	}
	if o.Pipeline.Correlator.MaxLineBytes <= 0 {
		o.Pipeline.Correlator.MaxLineBytes = o.MaxLineBytes
	}
	// A backfill favours throughput over latency: its batches are large,
	// whatever the live ingester's --batch-size, so that most messages
	// land in one append whole (a message split across appends costs the
	// store its placeholder row, a second write of its rows and a read of
	// what it holds). At most three batches are in memory (being filled,
	// queued, being appended): ~1 KiB an event, ~10 MiB a batch.
	o.Pipeline.BatchSize = max(o.Pipeline.BatchSize, BackfillBatchSize)
	if o.Pipeline.QueueChunks <= 0 {
		o.Pipeline.QueueChunks = 16
	}
	o.Pipeline.Live = false
	// the files are their own log: read again, they store nothing twice
	o.Pipeline.WALDir = ""
	log := o.Log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	p, err := NewPipeline(st, o.Pipeline, o.Metrics, log)
	if err != nil {
		return ingest.Stats{}, err
	}
	var rerr error
	for _, path := range paths {
		if rerr = ingestFile(ctx, p, path); rerr != nil {
			break
		}
	}
	// what was read is stored even when a later file failed
	perr := p.Close()
	return p.Stats(), errors.Join(rerr, perr)
}

func ingestFile(ctx context.Context, p *Pipeline, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// the correlator reads the file itself (lines over MaxLineBytes are counted and skipped)
	return p.SubmitReader(ctx, "file", f)
}
