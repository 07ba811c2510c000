package ingest

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/store"
)

// BatchSize is how many events IngestReader hands the sink at a time.
const BatchSize = 1000

// IngestReader reads a whole log (plain or gzip, detected by its magic
// bytes), correlates it and hands the events to sink in batches of at most
// BatchSize. At the end every held message is released (Flush). It returns
// what was read; the error is the reader's, the sink's or ctx's: the events
// handed to sink before it stay handed.
func IngestReader(ctx context.Context, r io.Reader, cfg Config, sink func([]store.Event) error) (Stats, error) {
	return ingestWith(ctx, r, cfg, sink, nil)
}

// ingestWith is IngestReader with a hook that sees the correlator (tests).
func ingestWith(ctx context.Context, r io.Reader, cfg Config, sink func([]store.Event) error, hook func(*Correlator)) (Stats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return Stats{}, fmt.Errorf("ingest: gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	// The sink may keep a batch, so each batch is a new slice; after a
	// full one, the next is made full size at once instead of growing.
	var batch []store.Event
	next := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := sink(batch)
		next = len(batch)
		batch = nil
		return err
	}
	c := NewCorrelator(cfg, func(evs []store.Event) error {
		if batch == nil && next > 0 {
			batch = make([]store.Event, 0, next)
		}
		batch = append(batch, evs...)
		if len(batch) >= BatchSize {
			return flush()
		}
		return nil
	})
	c.emitCopies = true
	if hook != nil {
		hook(c)
	}
	if pipelined() {
		return ingestPipelined(ctx, br, c, flush)
	}
	max := c.cfg.MaxLineBytes
	n := 0
	for {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return c.Stats(), err
			}
		}
		line, tooLong, err := readLine(br, max)
		if len(line) > 0 || tooLong || err == nil {
			if tooLong {
				c.stats.Lines++
				c.stats.skip(ReasonTooLong)
			} else if len(line) > 0 || err == nil {
				// the line's bytes are the reader's buffer: feed copies
				// what it keeps
				if ferr := c.feed(unsafe.String(unsafe.SliceData(line), len(line)), true); ferr != nil {
					return c.Stats(), ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// keep what was read: release it before reporting the error
			_ = c.Flush()
			_ = flush()
			return c.Stats(), fmt.Errorf("ingest: read: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return c.Stats(), err
	}
	return c.Stats(), flush()
}

// pipelineIngest: reading and the first half of each line (syslog header,
// early rejection) on one goroutine, correlation on another, when there
// are two cores to run them. Its halves cost ~150 and ~113 ns/line against
// ~230 on one goroutine; on the shared 2-core machine (load 4-8), 13
// interleaved runs gave a median of 274 ns/line (best 157) against 317
// (best 225) on one goroutine, for ~10% more CPU. Off, IngestReader runs
// on one goroutine (as with GOMAXPROCS=1); the golden test checks both.
var pipelineIngest = true

func pipelined() bool { return pipelineIngest && runtime.GOMAXPROCS(0) > 1 }

// pipeLine is what the correlator's half needs of most lines (consumeHead):
// the few bytes handed across cores per line. A line that needs more (one
// that may matter, a session's end) has its whole prepared in the batch's
// full, in order.
type pipeLine struct {
	t          time.Time
	op         prepOp
	invalid    bool
	disconnect bool
	full       bool // the next entry of full is this line's
}

// pipeBatch is a batch of lines read in a row, and the read's error after
// the last of them (only a batch's last read can fail or end the input).
type pipeBatch struct {
	lines []pipeLine
	full  []prepared
	err   error
}

const pipeBatchLines = 4096

// pipeBatches keeps batches between calls: a file or a connection at a
// time would otherwise allocate (and zero) them anew.
var pipeBatches = sync.Pool{New: func() any {
	return &pipeBatch{lines: make([]pipeLine, 0, pipeBatchLines), full: make([]prepared, 0, 256)}
}}

// ingestPipelined is the loop of ingestWith with the reading and the first
// half of each line (prepareLine) on a goroutine of its own, handing
// batches of prepared lines over a channel: the correlator sees the very
// same sequence of lines, counts and errors as in the loop, one core
// reading ahead of the other. Most lines cross over as a pipeLine of a few
// bytes; only those that need it as a whole prepared.
func ingestPipelined(ctx context.Context, br *bufio.Reader, c *Correlator, flush func() error) (Stats, error) {
	full := make(chan *pipeBatch, 2)
	free := make(chan *pipeBatch, 4)
	done := make(chan struct{})
	exited := make(chan struct{})
	for i := 0; i < cap(free); i++ {
		free <- pipeBatches.Get().(*pipeBatch)
	}
	defer func() {
		// the batches back in free (all of them unless the read stopped
		// early; the others are left to the garbage collector)
		for {
			select {
			case b := <-free:
				clear(b.full)
				b.lines, b.full, b.err = b.lines[:0], b.full[:0], nil
				pipeBatches.Put(b)
			default:
				return
			}
		}
	}()
	// The first half touches nothing of the correlator but the syslog
	// parser (and the configuration, read only); the second half never
	// touches the parser.
	// The reader half's own copy of the syslog parser: its state is
	// written for every line, and kept apart from the correlator the
	// other core writes (sharing cache lines with it cost ~10%).
	var parsed syslog.Parser
	go func() {
		parser := c.parser
		defer close(exited)
		defer close(full)
		defer func() { parsed = parser }() // before exited closes
		max := c.cfg.MaxLineBytes
		var host string
		var b *pipeBatch
		select {
		case b = <-free:
		case <-done:
			return
		}
		var p prepared
		for {
			line, tooLong, err := readLine(br, max)
			p = prepared{host: &host}
			if tooLong {
				p.op = prepTooLong
			} else if len(line) > 0 || err == nil {
				c.prepareLine(&p, &parser, unsafe.String(unsafe.SliceData(line), len(line)), true, true)
			}
			keep := p.op == prepLine || p.op == prepIgnored && p.disconnect
			b.lines = append(b.lines, pipeLine{t: p.t, op: p.op, invalid: p.invalid, disconnect: p.disconnect, full: keep})
			if keep {
				b.full = append(b.full, p)
			}
			if len(b.lines) == cap(b.lines) || err != nil {
				b.err = err
				select {
				case full <- b:
				case <-done:
					return
				}
				if err != nil {
					return
				}
				select {
				case b = <-free:
					b.lines, b.full, b.err = b.lines[:0], b.full[:0], nil
				case <-done:
					return
				}
			}
		}
	}()
	stop := func() {
		close(done)
		<-exited
		c.parser = parsed
	}
	n := 0
	for b := range full {
		next := 0
		for i := range b.lines {
			it := &b.lines[i]
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					stop()
					return c.Stats(), err
				}
			}
			var ferr error
			if it.full {
				ferr = c.consume(&b.full[next])
				next++
			} else {
				_, ferr = c.consumeHead(it.op, it.invalid, it.t, it.disconnect)
			}
			if ferr != nil {
				stop()
				return c.Stats(), ferr
			}
		}
		if err := b.err; err != nil && !errors.Is(err, io.EOF) {
			stop()
			// keep what was read: release it before reporting the error
			_ = c.Flush()
			_ = flush()
			return c.Stats(), fmt.Errorf("ingest: read: %w", err)
		}
		clear(b.full) // let the lines go
		free <- b
	}
	stop()
	if err := c.Flush(); err != nil {
		return c.Stats(), err
	}
	return c.Stats(), flush()
}

// readLine reads one line of at most max bytes; a longer line is skipped to
// its end and reported as tooLong. A last line without a newline is
// returned with io.EOF.
// The line is valid until the next read from br.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	// fast path: the whole line is in the buffer (no copy)
	frag, e := br.ReadSlice('\n')
	if e != bufio.ErrBufferFull {
		if len(frag) > max+1 {
			return nil, true, e
		}
		n := len(frag)
		if n > 0 && frag[n-1] == '\n' {
			n--
		}
		return frag[:n], false, e
	}
	var buf []byte
	for first := true; ; first = false {
		if !first {
			frag, e = br.ReadSlice('\n')
		}
		if !tooLong {
			if len(buf)+len(frag) > max+1 {
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, frag...)
			}
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		if e != nil {
			err = e
		}
		break
	}
	if tooLong {
		return nil, true, err
	}
	n := len(buf)
	if n > 0 && buf[n-1] == '\n' {
		n--
	}
	return buf[:n], false, err
}
