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

	"github.com/mailtrace/mailtrace/internal/ingest/fastscan"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// BatchSize is how many events IngestReader hands the sink at a time.
const BatchSize = 1000

// IngestReader reads a whole log (plain or gzip, detected by its magic
// bytes), correlates it and hands the events to sink in batches of at most
// BatchSize. At the end every held message is released (Flush). It returns
// what was read; the error is the reader's, the sink's or ctx's: the events
// handed to sink before it stay handed.
func IngestReader(ctx context.Context, r io.Reader, cfg Config, sink func([]mailflow.Event) error) (Stats, error) {
	return ingestWith(ctx, r, cfg, sink, nil)
}

// ingestWith is IngestReader with a hook that sees the correlator (tests).
func ingestWith(ctx context.Context, r io.Reader, cfg Config, sink func([]mailflow.Event) error, hook func(*Correlator)) (Stats, error) {
	// The sink may keep a batch, so each batch is a new slice; after a
	// full one, the next is made full size at once instead of growing.
	var batch []mailflow.Event
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
	c := NewCorrelator(cfg, func(evs []mailflow.Event) error {
		if batch == nil && next > 0 {
			batch = make([]mailflow.Event, 0, next)
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
	if err := c.ReadLines(ctx, r, nil); err != nil {
		var re readError
		if errors.As(err, &re) {
			// keep what was read: release it before reporting the error
			_ = c.Flush()
			_ = flush()
		}
		return c.Stats(), err
	}
	if err := c.Flush(); err != nil {
		return c.Stats(), err
	}
	return c.Stats(), flush()
}

// readError is a failure to read the input (as opposed to ctx's or emit's).
type readError struct{ err error }

func (e readError) Error() string { return "ingest: read: " + e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// afterLines is how many lines the sequential loop reads between calls of
// ReadLines' after (the pipeline calls it once per batch).
const afterLines = 4096

// LogReader reads a log file's text: r itself, or its gzip stream when r
// starts with gzip's magic bytes (whatever the file is named). close
// releases the gzip reader; the error is "ingest: gzip: ..." for a gzip
// header that cannot be read.
func LogReader(r io.Reader) (br *bufio.Reader, close func() error, err error) {
	br = bufio.NewReaderSize(r, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("ingest: gzip: %w", err)
		}
		return bufio.NewReaderSize(zr, 64<<10), zr.Close, nil
	}
	return br, func() error { return nil }, nil
}

// ReadLines reads every line of r (plain or gzip, detected by its magic
// bytes) into c, as fast as c can take them: on three goroutines (reading,
// the syslog header and early rejection, correlation; see ingestPipelined)
// when there are two cores, else on this one. Held messages are not
// released at the end (Flush is the caller's). after, when not nil, is
// called on the correlating goroutine every few thousand lines and at the
// end: c (its Stats) and what its emit function gathered may be looked at
// then. The error is ctx's, emit's, or the reader's (wrapped in "ingest:
// read:" or "ingest: gzip:").
func (c *Correlator) ReadLines(ctx context.Context, r io.Reader, after func()) error {
	br, closeLog, err := LogReader(r)
	if err != nil {
		return err
	}
	defer closeLog()
	if after == nil {
		after = func() {}
	}
	if pipelined() {
		return ingestPipelined(ctx, br, c, after)
	}
	max := c.cfg.MaxLineBytes
	n := 0
	for {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if n%afterLines == 0 {
			after()
		}
		line, tooLong, err := readLine(br, max)
		if len(line) > 0 || tooLong || err == nil {
			if tooLong {
				c.env.Stats.Lines++
				c.env.Stats.Skip(ReasonTooLong)
			} else if len(line) > 0 || err == nil {
				// the line's bytes are the reader's buffer: feed copies
				// what it keeps
				if ferr := c.feed(fastscan.String(line), true); ferr != nil {
					return ferr
				}
			}
		}
		if err != nil {
			after()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return readError{err}
		}
	}
}

// pipelineIngest: ReadLines runs its three stages (ingestPipelined) when
// there are two cores to run them. On the shared 2-core machine, 7 runs
// over the benchmark log gave a median of 141 ns/line against 212 on one
// goroutine (docs/benchmarks.md), for about the same CPU per line. Off,
// ReadLines runs on one goroutine (as with GOMAXPROCS=1); the golden test
// checks both.
var pipelineIngest = true

func pipelined() bool { return pipelineIngest && runtime.GOMAXPROCS(0) > 1 }

// pipeLine is what the correlator's half needs of most lines (consumeHead):
// the few bytes handed across cores per line. A line that needs more (one
// its source consumes) has its whole prepared in the batch's full, in
// order.
type pipeLine struct {
	t       time.Time
	op      prepOp
	invalid bool
	full    bool // the next entry of full is this line's
}

// pipeBatch is a batch of lines read in a row, and the read's error after
// the last of them (only a batch's last read can fail or end the input).
// The reading stage fills arena and ends, the preparing stage lines and
// full, the correlating stage consumes them and hands the batch back.
type pipeBatch struct {
	arena []byte  // the lines' bytes, one after the other
	ends  []int32 // where each line ends in arena; endTooLong, endNone
	lines []pipeLine
	full  []prepared
	err   error
}

// Marks in pipeBatch.ends for reads that gave no line.
const (
	endTooLong = -1 // a line over MaxLineBytes, skipped
	endNone    = -2 // nothing (the end of the input)
)

const (
	pipeBatchLines = 4096
	pipeArenaBytes = 1 << 20 // a batch is handed on once its lines fill this
	pipeBatchCount = 6
)

// pipeBatches keeps batches between calls: a file or a connection at a
// time would otherwise allocate (and zero) them anew.
var pipeBatches = sync.Pool{New: func() any {
	return &pipeBatch{
		arena: make([]byte, 0, pipeArenaBytes+(16<<10)),
		ends:  make([]int32, 0, pipeBatchLines),
		lines: make([]pipeLine, 0, pipeBatchLines),
		full:  make([]prepared, 0, 256),
	}
}}

func (b *pipeBatch) reset() {
	clear(b.full) // let the lines go
	b.arena, b.ends, b.lines, b.full, b.err = b.arena[:0], b.ends[:0], b.lines[:0], b.full[:0], nil
}

// ingestPipelined is the loop of ingestWith in three stages, each on a
// goroutine of its own, handing batches of lines over channels: reading
// (lines copied out of the reader's buffer), preparing (prepareLine: the
// syslog header, the early rejection) and correlating (consume). The
// correlator sees the very same sequence of lines, counts and errors as in
// the loop. The preparing stage alone holds the syslog parser, so its
// state (year inference, caches) follows the lines in order as in the
// loop; three stages keep both cores busy where two (reading with
// preparing, correlating) left the correlating core waiting a third of
// the time. Most lines cross from preparing to correlating as a pipeLine of
// a few bytes; only those that need it as a whole prepared.
func ingestPipelined(ctx context.Context, br *bufio.Reader, c *Correlator, after func()) error {
	raw := make(chan *pipeBatch, 2)
	full := make(chan *pipeBatch, 2)
	free := make(chan *pipeBatch, pipeBatchCount)
	done := make(chan struct{})
	readExited, prepExited := make(chan struct{}), make(chan struct{})
	for i := 0; i < pipeBatchCount; i++ {
		free <- pipeBatches.Get().(*pipeBatch)
	}
	defer func() {
		// the batches back in free (all of them unless the read stopped
		// early; the others are left to the garbage collector)
		for {
			select {
			case b := <-free:
				b.reset()
				pipeBatches.Put(b)
			default:
				return
			}
		}
	}()
	// Reading: touches nothing of the correlator but its configuration.
	go func() {
		defer close(readExited)
		defer close(raw)
		max := c.cfg.MaxLineBytes
		var b *pipeBatch
		select {
		case b = <-free:
		case <-done:
			return
		}
		for {
			line, tooLong, err := readLine(br, max)
			switch {
			case tooLong:
				b.ends = append(b.ends, endTooLong)
			case len(line) > 0 || err == nil:
				b.arena = append(b.arena, line...)
				b.ends = append(b.ends, int32(len(b.arena)))
			default:
				b.ends = append(b.ends, endNone)
			}
			if len(b.ends) == cap(b.ends) || len(b.arena) >= pipeArenaBytes || err != nil {
				b.err = err
				select {
				case raw <- b:
				case <-done:
					return
				}
				if err != nil {
					return
				}
				select {
				case b = <-free:
				case <-done:
					return
				}
			}
		}
	}()
	// Preparing: the first half of each line, with its own copy of the
	// syslog parser (its state is written for every line, and kept apart
	// from the correlator the other core writes: sharing cache lines with
	// it cost ~10%). It goes back into the correlator when this stage exits.
	var parsed syslog.Parser
	go func() {
		parser := c.parser
		defer close(prepExited)
		defer close(full)
		defer func() { parsed = parser }() // before prepExited closes
		var host string
		var p prepared
		for b := range raw {
			start := int32(0)
			for _, end := range b.ends {
				p = prepared{host: &host}
				switch end {
				case endTooLong:
					p.op = prepTooLong
				case endNone:
				default:
					line := b.arena[start:end]
					start = end
					// the line's bytes are the batch's, reused once the
					// correlator is done with it: view (copies what it keeps)
					c.prepareLine(&p, &parser, fastscan.String(line), true, true)
				}
				keep := p.op == prepLine || p.op == prepIgnored && p.line.Keep
				b.lines = append(b.lines, pipeLine{t: p.line.UTC, op: p.op, invalid: p.invalid, full: keep})
				if keep {
					b.full = append(b.full, p)
				}
			}
			select {
			case full <- b:
			case <-done:
				return
			}
		}
	}()
	stop := func() {
		close(done)
		<-readExited
		<-prepExited
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
					return err
				}
			}
			var ferr error
			if it.full {
				ferr = c.consume(&b.full[next])
				next++
			} else {
				_, ferr = c.consumeHead(it.op, it.invalid, it.t, false)
			}
			if ferr != nil {
				stop()
				return ferr
			}
		}
		after()
		if err := b.err; err != nil && !errors.Is(err, io.EOF) {
			stop()
			return readError{err}
		}
		b.reset()
		free <- b
	}
	stop()
	return nil
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
