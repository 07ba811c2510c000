package server

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/store"
)

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
	if o.Pipeline.BatchSize <= 0 {
		o.Pipeline.BatchSize = 5000 // a backfill favours throughput over latency
	}
	if o.Pipeline.QueueChunks <= 0 {
		o.Pipeline.QueueChunks = 16
	}
	o.Pipeline.Live = false
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

// ReadLines reads newline-separated lines (plain or gzip) from r into p.
func ReadLines(ctx context.Context, p *Pipeline, r io.Reader, transport string, max int) error {
	br := bufio.NewReaderSize(r, 256<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	lines := make([]string, 0, chunkLines)
	for {
		l, tooLong, err := readLine(br, max)
		switch {
		case tooLong:
			p.Dropped(ReasonFrameTooLong, transport, "")
		case l != "" || err == nil:
			lines = append(lines, l)
		}
		if len(lines) == chunkLines || (err != nil && len(lines) > 0) {
			if serr := p.Submit(ctx, transport, lines); serr != nil {
				return serr
			}
			lines = make([]string, 0, chunkLines)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine reads one line of at most max bytes; a longer one is skipped to
// its end. A last line without a newline is returned with io.EOF.
func readLine(br *bufio.Reader, max int) (string, bool, error) {
	frag, err := br.ReadSlice('\n')
	if err == nil || (err != bufio.ErrBufferFull && len(frag) <= max+1) {
		if len(frag) > max+1 {
			return "", true, err
		}
		return string(trimEOL(frag)), false, err
	}
	var buf []byte
	tooLong := false
	for {
		if !tooLong {
			if len(buf)+len(frag) > max+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, frag...)
			}
		}
		if err != bufio.ErrBufferFull {
			break
		}
		frag, err = br.ReadSlice('\n')
	}
	if tooLong {
		return "", true, err
	}
	return string(trimEOL(buf)), false, err
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
