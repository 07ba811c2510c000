package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/ingest/wal"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// PipelineOptions configure the way from lines to the store.
type PipelineOptions struct {
	Correlator ingest.Config
	// BatchSize: events are appended when this many are waiting (default 500)...
	BatchSize int
	// BatchWait: ...or when the oldest waiting event is this old (default 200ms).
	BatchWait time.Duration
	// QueueChunks bounds the lines read but not yet correlated, in chunks of
	// up to 256 lines (default 64). A full queue blocks the readers.
	QueueChunks int
	// StateFile, when set, keeps the correlator's state across restarts:
	// restored at start, saved every StateInterval (default 10s) and at
	// shutdown, each time after every event emitted so far is stored.
	StateFile     string
	StateInterval time.Duration
	// MaxBackoff caps the wait between retries of a failed append (default 10s).
	MaxBackoff time.Duration
	// ShutdownGrace bounds how long a shutdown waits for a store that is down
	// (default 30s); what is not stored by then is lost, and the state is
	// not saved, so that the next start does not believe it was.
	ShutdownGrace time.Duration
	// Live: lines come from running mail servers, so the correlator's clock
	// follows the wall clock in quiet periods (releasing held messages) and
	// ingest lag is observed. Off for backfills from files.
	Live bool
	// WALDir, when set (with StateFile), keeps every accepted message in a
	// write-ahead log (package wal) before Submit returns: the correlator
	// reads the log, each checkpoint (the state file) records the position
	// it covers, and a start replays the log from there, so that a crash
	// loses nothing Submit accepted and stores nothing twice.
	WALDir string
	// WALMaxBytes caps the log (default 1 GiB): when it is full, Submit
	// fails with ErrWALFull until the store has caught up.
	WALMaxBytes int64
	// WALSegmentBytes is the size of the log's files (default 64 MiB).
	WALSegmentBytes int64
	// Writers is how many appends run at once (default: the store's
	// store.ConcurrentAppender choice, else 1). Each message's events all
	// go to one writer, in the order the correlator emitted them, so a
	// message is never appended by two at once; a batch is split between
	// them by message.
	Writers int
}

func (o *PipelineOptions) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.BatchWait <= 0 {
		o.BatchWait = 200 * time.Millisecond
	}
	if o.QueueChunks <= 0 {
		o.QueueChunks = 64
	}
	if o.StateInterval <= 0 {
		o.StateInterval = 10 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 30 * time.Second
	}
	if o.WALMaxBytes <= 0 {
		o.WALMaxBytes = DefaultWALMaxBytes
	}
	if o.WALSegmentBytes <= 0 {
		o.WALSegmentBytes = 64 << 20
	}
}

// DefaultWALDir is where the write-ahead log of a state file goes when
// no directory is given: beside it, named after it ("ingest-state.json":
// "ingest-state.wal").
func DefaultWALDir(stateFile string) string {
	if stateFile == "" {
		return ""
	}
	return strings.TrimSuffix(stateFile, filepath.Ext(stateFile)) + ".wal"
}

// DefaultWALMaxBytes is the default cap of the write-ahead log.
const DefaultWALMaxBytes = 1 << 30

// ErrWALFull: the write-ahead log is at its cap (PipelineOptions
// WALMaxBytes) because the store has not kept up; nothing of the
// messages was accepted.
var ErrWALFull = errors.New("the ingester's write-ahead log is full (--wal-max-bytes) because the trace store has not kept up")

// batchQueue is how many batches may wait for the writer: two for a live
// ingester (small batches, bursts), one for a backfill (large ones: the
// correlator fills the next while the writer appends one and another
// waits). None for a backfill into a store.Preparer: the prepared batch
// waits in the correlator's send (a prepared batch, its events copied and
// encoded, is twice the size of its events, and the queue would hold a
// third one).
func batchQueue(o PipelineOptions, prepares bool) int {
	if o.Live {
		return 2
	}
	if prepares {
		return 0
	}
	return 1
}

// chunkLines is the most lines a reader hands over at once, chunkBytes
// about the most bytes (a chunk ends after the line that reaches it), so
// the queue holds at most QueueChunks x (chunkBytes + MaxLineBytes) of lines.
const (
	chunkLines = 256
	// walChunkLines is chunkLines for a syslog connection when each chunk
	// waits for the write-ahead log's fsync.
	walChunkLines = 2048
	chunkBytes    = 256 << 10
)

type chunk struct {
	msgs      []syslog.Message
	transport string
	// reader, when set, is a whole log the correlator reads itself at full
	// speed (ingest.Correlator.ReadLines) instead of msgs; readErr gets
	// its outcome before done does, ctx stops it.
	reader  io.Reader
	readErr *error
	ctx     context.Context
	// done, when set, receives the outcome once every event of these lines
	// (but the ones held for a link) is stored.
	done chan error
	// walEnd: read from the write-ahead log, the position after these
	// lines' record; advance, when not zero, is a record of the clock's
	// move instead of lines.
	walEnd  wal.Pos
	advance time.Time
}

type batch struct {
	events   []mailflow.Event
	prepared store.Prepared // instead of events, from a store.Preparer
	times    []time.Time    // a live prepared batch's event times (the lag metric)
	done     *doneGroup
}

// len is how many events the batch holds.
func (b *batch) len() int {
	if b.prepared != nil {
		return b.prepared.Len()
	}
	return len(b.events)
}

// doneGroup tells a waiter once every writer has stored what was sent
// to it before the waiter's mark: the first error of any, or nil.
type doneGroup struct {
	mu   sync.Mutex
	left int
	err  error
	ch   chan error
}

func (g *doneGroup) finish(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.left--
	last, err := g.left == 0, g.err
	g.mu.Unlock()
	if last {
		g.ch <- err
	}
}

// Pipeline is the single correlator of an ingester and its writers: readers
// Submit chunks of lines; one goroutine correlates them; others (Writers,
// each with the messages whose trace ID hashes to it) append the events in
// batches, retrying while the store fails. Every queue is bounded, so a
// slow store slows the readers down instead of filling memory.
type Pipeline struct {
	o       PipelineOptions
	st      store.Store
	prep    store.Preparer // st, when it is one; else nil
	m       *Metrics
	log     logr.Logger
	badLog  *rateLog
	in      chan chunk
	writers []chan batch // a writer's batches, in order
	shard   maphash.Seed // a message's writer: the hash of its trace ID
	// spent holds batches' event slices the writers are done with,
	// cleared, for the correlator to fill again: a backfill's batches are
	// ~5 MB each (10,000 events of 464 bytes), which made anew for every
	// batch were a third of the bytes the ingester allocated (and so of
	// its garbage collections). One a writer is enough (the correlator
	// takes them as it starts its next batch) and keeps the live heap at
	// most a batch above what it was.
	spent chan []mailflow.Event
	c     *ingest.Correlator

	pending      [][]mailflow.Event // a writer's events waiting for it
	npending     int                // all of them
	pendingSince time.Time
	lastLine     time.Time // wall time of the latest line
	lastState    time.Time
	evicted      int64 // the correlator's Evicted counted in the metric

	closeOnce sync.Once
	closed    chan struct{}
	// sending is held (read) by every Submit while it may send on in, so
	// that Close never closes in under a sender (an HTTP handler that
	// outlived the server's shutdown grace, say).
	sending   sync.RWMutex
	corrDone  chan error
	writeDone chan struct{}
	writeCtx  context.Context
	stopWrite context.CancelFunc
	writeErr  error

	// with a write-ahead log: readers append to it (walMu keeps the
	// encoding buffer), tail reads it into in; fed is the position after
	// the last record the correlator read, advancing that a clock record
	// is on its way.
	wal       *wal.WAL
	abort     chan struct{} // closed when a shutdown stops reading the log
	walMu     sync.Mutex
	walBuf    []byte
	tailDone  chan struct{}
	fed       wal.Pos
	advancing bool
}

// NewPipeline restores the state file, if any, and starts the pipeline.
func NewPipeline(st store.Store, o PipelineOptions, m *Metrics, log logr.Logger) (*Pipeline, error) {
	o.defaults()
	if o.Writers <= 0 {
		o.Writers = 1
		if c, ok := st.(store.ConcurrentAppender); ok {
			o.Writers = max(1, c.AppendConcurrency())
		}
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	p := &Pipeline{
		o: o, st: st, m: m, log: log, badLog: newRateLog(log, 10*time.Second),
		in:        make(chan chunk, o.QueueChunks),
		writers:   make([]chan batch, o.Writers),
		shard:     maphash.MakeSeed(),
		pending:   make([][]mailflow.Event, o.Writers),
		spent:     make(chan []mailflow.Event, o.Writers),
		closed:    make(chan struct{}),
		corrDone:  make(chan error, 1),
		writeDone: make(chan struct{}),
	}
	p.prep, _ = st.(store.Preparer)
	for w := range p.writers {
		p.writers[w] = make(chan batch, batchQueue(o, p.prep != nil))
	}
	p.c = p.newCorrelator()
	var pos wal.Pos
	if o.StateFile != "" {
		var err error
		if pos, err = p.restore(); err != nil {
			return nil, err
		}
	}
	p.fed = pos // a backfill writes it back as it found it
	if o.WALDir != "" {
		if o.StateFile == "" {
			return nil, errors.New("ingest: a write-ahead log needs a state file (its checkpoint)")
		}
		if err := p.openWAL(pos); err != nil {
			return nil, err
		}
	}
	p.writeCtx, p.stopWrite = context.WithCancel(context.Background())
	var writing sync.WaitGroup
	for _, ch := range p.writers {
		writing.Add(1)
		go func() { defer writing.Done(); p.write(ch) }()
	}
	go func() { writing.Wait(); close(p.writeDone) }()
	go func() { p.corrDone <- p.correlate() }()
	return p, nil
}

// newCorrelator returns the pipeline's correlator: its events wait in
// pending for their writer (copied there: the correlator reuses its slice).
func (p *Pipeline) newCorrelator() *ingest.Correlator {
	c := ingest.NewCorrelator(p.o.Correlator, func(evs []mailflow.Event) error {
		if p.npending == 0 {
			p.pendingSince = time.Now()
		}
		p.npending += len(evs)
		if len(p.pending) == 1 {
			if p.pending[0] == nil {
				p.pending[0] = p.newBatch()
			}
			p.pending[0] = append(p.pending[0], evs...)
		} else {
			for i := range evs {
				w := p.writerOf(evs[i].MessageTraceID)
				if p.pending[w] == nil {
					p.pending[w] = p.newBatch()
				}
				p.pending[w] = append(p.pending[w], evs[i])
			}
		}
		// A full batch goes at once, not when the reader next looks
		// (every few thousand lines of a backfill): a batch that outgrew
		// its slice was made again at twice its size.
		if p.npending >= p.o.BatchSize {
			p.send(nil)
		}
		return nil
	})
	c.EmitCopies()
	return c
}

// writerOf is the writer of a message's events.
func (p *Pipeline) writerOf(traceID string) int {
	return int(maphash.String(p.shard, traceID) % uint64(len(p.writers)))
}

// newBatch returns an empty slice for a writer's next batch: one a writer
// is done with, else a new one of its share of BatchSize (and a little
// more: the hash does not split a batch exactly).
func (p *Pipeline) newBatch() []mailflow.Event {
	select {
	case evs := <-p.spent:
		return evs
	default:
		n := p.o.BatchSize
		if w := len(p.writers); w > 1 {
			n = n/w + n/(4*w)
		}
		return make([]mailflow.Event, 0, n)
	}
}

// recycle hands a stored batch's slice back to the correlator (the store
// keeps nothing of it once Append has returned), cleared so that it holds
// on to none of the events' strings.
func (p *Pipeline) recycle(evs []mailflow.Event) {
	if evs == nil || cap(evs) > 4*p.o.BatchSize {
		return // none (a prepared batch's), or an outsized one (a Flush's, say), is not kept
	}
	clear(evs)
	select {
	case p.spent <- evs[:0]:
	default:
	}
}

// restore reads the state file into the correlator and returns the
// write-ahead log position it covers.
func (p *Pipeline) restore() (wal.Pos, error) {
	b, err := os.ReadFile(p.o.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ingest state: %w", err)
	}
	var s ingest.State
	if err = json.Unmarshal(b, &s); err == nil {
		err = p.c.Restore(s)
	}
	if err != nil {
		// A damaged state costs the short queue ids in flight their trace
		// IDs, not the ingester: start afresh (a correlator half restored
		// is dropped) and keep the file to look at.
		// With a write-ahead log the whole log is read again.
		p.log.Error(err, "cannot restore the ingest state; starting without it", "file", p.o.StateFile)
		_ = os.Rename(p.o.StateFile, p.o.StateFile+".bad")
		p.c = p.newCorrelator()
		return 0, nil
	}
	p.log.Info("restored the ingest state", "file", p.o.StateFile, "bytes", len(b), "walPosition", s.WALPosition)
	return wal.Pos(s.WALPosition), nil
}

// errWALDisk: the write-ahead log's disk failed a write or an fsync.
var errWALDisk = errors.New("the ingester's write-ahead log cannot be written")

// Retryable reports whether a Submit error may pass: the write-ahead log
// is full or its disk failed, and nothing of the messages was accepted.
func Retryable(err error) bool { return errors.Is(err, ErrWALFull) || errors.Is(err, errWALDisk) }

// Submit hands messages (lines, or fields a sender already split) to the
// correlator, blocking while the queue is full. It returns an error only
// when ctx ends or the pipeline is closed. With a write-ahead log it
// returns once the messages are in it and on disk (or ErrWALFull, or the
// disk's error): they are then kept whatever happens next.
func (p *Pipeline) Submit(ctx context.Context, transport string, msgs []syslog.Message) error {
	if p.wal != nil {
		return p.accept(transport, msgs, true)
	}
	return p.submit(ctx, chunk{msgs: msgs, transport: transport})
}

// SubmitNoSync is Submit for what no sender waits for (UDP): with a
// write-ahead log the messages are written to it but not waited on to
// reach the disk, so a crash may lose the latest of them.
func (p *Pipeline) SubmitNoSync(ctx context.Context, transport string, msgs []syslog.Message) error {
	if p.wal != nil {
		return p.accept(transport, msgs, false)
	}
	return p.submit(ctx, chunk{msgs: msgs, transport: transport})
}

// accept writes msgs to the write-ahead log, and waits for the disk when
// durable. Records are appended in the order the correlator reads them.
func (p *Pipeline) accept(transport string, msgs []syslog.Message, durable bool) error {
	if len(msgs) == 0 {
		return nil
	}
	select {
	case <-p.closed:
		return errors.New("ingest: pipeline closed")
	default:
	}
	p.walMu.Lock()
	p.walBuf = encodeMessages(p.walBuf[:0], transport, msgs)
	end, err := p.wal.Append(p.walBuf)
	if cap(p.walBuf) > 1<<20 {
		p.walBuf = nil // a large request's buffer is not kept
	}
	p.walMu.Unlock()
	if err == nil && durable {
		err = p.wal.Sync(end)
	}
	p.walSizes()
	if err != nil {
		if errors.Is(err, wal.ErrFull) {
			p.m.WALRefused.WithLabelValues("full").Inc()
			return ErrWALFull
		}
		p.m.WALRefused.WithLabelValues("error").Inc()
		p.badLog.Info("wal", "the write-ahead log refused messages; nothing of them was accepted", "error", err.Error(), "dir", p.o.WALDir)
		return fmt.Errorf("%w: %w", errWALDisk, err)
	}
	p.m.LinesRead.WithLabelValues(transport).Add(float64(len(msgs)))
	return nil
}

// SubmitWait is Submit, then waits until the events of these messages are
// stored (or are held for a link, which the state file keeps). With a
// write-ahead log it is Submit: the log keeps the messages until their
// events are stored.
func (p *Pipeline) SubmitWait(ctx context.Context, transport string, msgs []syslog.Message) error {
	if p.wal != nil {
		return p.accept(transport, msgs, true)
	}
	done := make(chan error, 1)
	if err := p.submit(ctx, chunk{msgs: msgs, transport: transport, done: done}); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SubmitReader hands r, a whole log (plain or gzip), to the correlator,
// which reads it between the other readers' chunks at full speed (the
// lines are never copied into strings: ingest.Correlator.ReadLines), and
// waits until its events are stored (or are held for a link). A backfill
// reads its files this way.
func (p *Pipeline) SubmitReader(ctx context.Context, transport string, r io.Reader) error {
	done := make(chan error, 1)
	var rerr error
	if err := p.submit(ctx, chunk{transport: transport, reader: r, readErr: &rerr, ctx: ctx, done: done}); err != nil {
		return err
	}
	select {
	case err := <-done:
		// rerr was written before done was sent
		return errors.Join(rerr, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pipeline) submit(ctx context.Context, ch chunk) error {
	p.sending.RLock()
	defer p.sending.RUnlock()
	select {
	case <-p.closed:
		return errors.New("ingest: pipeline closed")
	default:
	}
	p.m.LinesRead.WithLabelValues(ch.transport).Add(float64(len(ch.msgs)))
	p.m.QueueDepth.Add(float64(len(ch.msgs)))
	select {
	case p.in <- ch:
		return nil
	case <-ctx.Done():
		p.m.QueueDepth.Sub(float64(len(ch.msgs)))
		return ctx.Err()
	case <-p.closed:
		p.m.QueueDepth.Sub(float64(len(ch.msgs)))
		return errors.New("ingest: pipeline closed")
	}
}

// Dropped counts a frame or request dropped before the correlator.
func (p *Pipeline) Dropped(reason, transport, what string) {
	p.m.NotUnderstood.WithLabelValues(reason).Inc()
	p.badLog.Info(reason, "dropped input", "reason", reason, "transport", transport, "sample", sample(what))
}

// Close stops taking lines (the readers must have stopped submitting),
// correlates what is queued, stores it and saves the state (or, without a
// state file, releases the held messages and stores them). It returns the
// first error that lost events.
func (p *Pipeline) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed) // blocked senders give up...
		if p.wal != nil {
			// tail reads the log to its end and closes in; a store that
			// is down gets ShutdownGrace, then what the log holds beyond
			// the correlator is read at the next start
			t := time.AfterFunc(p.o.ShutdownGrace, func() { close(p.abort); p.stopWrite() })
			<-p.tailDone
			err = <-p.corrDone
			t.Stop()
			err = errors.Join(err, p.wal.Close())
			return
		}
		p.sending.Lock() // ...and are gone once this is held
		close(p.in)
		p.sending.Unlock()
		err = <-p.corrDone
	})
	return err
}

// Stats returns what the correlator has read (call it after Close).
func (p *Pipeline) Stats() ingest.Stats { return p.c.Stats() }

func (p *Pipeline) correlate() error {
	tick := time.NewTicker(p.o.BatchWait / 2)
	defer tick.Stop()
	p.lastState = time.Now()
	for {
		select {
		case ch, ok := <-p.in:
			if !ok {
				return p.finish()
			}
			p.feed(ch)
		case now := <-tick.C:
			p.idle(now)
		}
	}
}

func (p *Pipeline) feed(ch chunk) {
	if ch.reader != nil {
		p.feedReader(ch)
		return
	}
	if ch.walEnd != 0 {
		defer func() { p.fed = ch.walEnd }()
		if !ch.advance.IsZero() {
			_ = p.c.Advance(ch.advance)
			p.advancing = false
			return
		}
	}
	for _, m := range ch.msgs {
		n0, _ := p.c.Skipped()
		// emit never fails
		if m.Fields != nil {
			_ = p.c.FeedFields(m.Fields)
		} else {
			_ = p.c.Feed(m.Line)
		}
		if n, reason := p.c.Skipped(); n != n0 {
			p.m.NotUnderstood.WithLabelValues(reason).Inc()
			p.badLog.Info(reason, "line not understood", "reason", reason, "transport", ch.transport, "sample", sample(m.Text()))
		}
	}
	p.m.QueueDepth.Sub(float64(len(ch.msgs)))
	p.lastLine = time.Now()
	if ch.done != nil {
		p.send(ch.done)
	}
}

// feedReader reads a whole log into the correlator (SubmitReader). The
// lines read and not understood are counted every few thousand lines, the
// latter logged by reason (at the rate limit) without a sample.
func (p *Pipeline) feedReader(ch chunk) {
	prev := p.c.Stats()
	after := func() {
		s := p.c.Stats()
		p.m.LinesRead.WithLabelValues(ch.transport).Add(float64(s.Lines - prev.Lines))
		for reason, n := range s.NotUnderstood {
			if d := n - prev.NotUnderstood[reason]; d > 0 {
				p.m.NotUnderstood.WithLabelValues(reason).Add(float64(d))
				p.badLog.Info(reason, "lines not understood", "reason", reason, "transport", ch.transport, "lines", d)
			}
		}
		prev = s
		p.countEvicted()
	}
	*ch.readErr = p.c.ReadLines(ch.ctx, ch.reader, after)
	p.lastLine = time.Now()
	if ch.done != nil {
		p.send(ch.done)
	}
}

// idle runs between chunks: it appends a batch that waited long enough,
// lets log time pass in quiet periods, and saves the state now and then.
func (p *Pipeline) idle(now time.Time) {
	if p.o.Live && !p.lastLine.IsZero() && now.Sub(p.lastLine) >= time.Second {
		// No line for a while: log time moves on with the wall clock from
		// the latest line, so a held message is released after LinkWait.
		if t := p.c.Now(); !t.IsZero() {
			if p.wal == nil {
				_ = p.c.Advance(t.Add(now.Sub(p.lastLine)))
				p.lastLine = now
			} else if !p.advancing && p.fed == p.wal.Head() {
				// through the log, so that a replay moves the clock
				// between the same lines
				p.walMu.Lock()
				_, err := p.wal.Append(encodeAdvance(nil, t.Add(now.Sub(p.lastLine))))
				p.walMu.Unlock()
				if err == nil {
					p.advancing, p.lastLine = true, now
				}
			}
		}
	}
	if p.npending > 0 && now.Sub(p.pendingSince) >= p.o.BatchWait {
		p.send(nil)
	}
	p.countEvicted()
	if p.wal != nil {
		p.m.WALBacklog.Set(float64(p.wal.Head() - p.fed))
	}
	if p.o.StateFile != "" && now.Sub(p.lastState) >= p.o.StateInterval {
		p.lastState = now
		if err := p.sync(); err == nil {
			p.checkpoint()
		}
	}
}

// countEvicted counts the messages the correlator evicted since the last
// call (over its cap on messages in flight).
func (p *Pipeline) countEvicted() {
	if e := p.c.Evicted(); e != p.evicted {
		p.m.Evicted.Add(float64(e - p.evicted))
		p.evicted = e
	}
}

// send hands the pending events to their writers (blocking while one is
// busy); done, when set, gets the outcome once all of them are stored.
func (p *Pipeline) send(done chan error) {
	if p.npending == 0 && done == nil {
		return
	}
	var g *doneGroup
	if done != nil {
		g = &doneGroup{left: len(p.writers), ch: done}
	}
	for w, ch := range p.writers {
		if len(p.pending[w]) == 0 && g == nil {
			continue
		}
		b := batch{events: p.pending[w], done: g}
		// A store's own work on a batch that needs no database is done
		// here, while the writer appends the batch before (SQLite has one
		// writer); the events' slice goes back for the next batch at once.
		// A batch that fails to prepare goes as it is: its Append fails
		// the same way, and says so.
		if p.prep != nil && len(b.events) > 0 {
			if prep, err := p.prep.Prepare(b.events); err == nil {
				var times []time.Time
				if p.o.Live {
					times = make([]time.Time, len(b.events))
					for i := range b.events {
						times[i] = b.events[i].Time
					}
				}
				p.recycle(b.events)
				b = batch{prepared: prep, times: times, done: g}
			}
		}
		ch <- b
		p.pending[w] = nil
	}
	p.npending = 0
}

// sync waits until every event emitted so far is stored.
func (p *Pipeline) sync() error {
	done := make(chan error, 1)
	p.send(done)
	return <-done
}

func (p *Pipeline) finish() error {
	if p.o.StateFile == "" {
		_ = p.c.Flush()
	}
	// a store that is down gets ShutdownGrace, then the writer gives up
	t := time.AfterFunc(p.o.ShutdownGrace, p.stopWrite)
	err := p.sync()
	t.Stop()
	if err == nil && p.o.StateFile != "" {
		p.checkpoint()
	}
	for _, ch := range p.writers {
		close(ch)
	}
	<-p.writeDone
	p.stopWrite()
	return err
}

// durable is a store whose appends may be acknowledged before they are on
// disk (SQLite in WAL mode with synchronous=NORMAL: a commit is in the OS's
// cache, safe from a crash of the process but not of the machine): Sync
// makes every append it returned from durable.
type durable interface {
	Sync(ctx context.Context) error
}

// checkpoint saves the state (call it once every event emitted so far is
// stored) with the write-ahead log's position it covers, then deletes the
// log's segments before that position.
func (p *Pipeline) checkpoint() {
	st, err := p.c.State()
	if d, ok := p.st.(durable); ok && err == nil {
		// what the state covers must survive a power loss before the
		// write-ahead log behind it is deleted
		ctx, cancel := context.WithTimeout(p.writeCtx, time.Minute)
		err = d.Sync(ctx)
		cancel()
	}
	if err == nil {
		st.WALPosition = uint64(p.fed)
		err = writeFileAtomic(p.o.StateFile, st)
	}
	if err != nil {
		p.m.StateSaves.WithLabelValues("error").Inc()
		p.log.Error(err, "saving the ingest state failed", "file", p.o.StateFile)
		return
	}
	p.m.StateSaves.WithLabelValues("ok").Inc()
	if p.wal != nil {
		if err := p.wal.TruncateBefore(p.fed); err != nil {
			p.log.Error(err, "deleting the write-ahead log behind the checkpoint failed", "dir", p.o.WALDir)
		}
		p.walSizes()
	}
}

func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	// the rename itself must be on disk before what it covers is deleted
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// write appends a writer's batches in order, retrying each until it is
// stored.
func (p *Pipeline) write(batches <-chan batch) {
	for b := range batches {
		var err error
		if b.len() > 0 {
			err = p.appendRetry(&b)
			p.recycle(b.events)
		}
		if b.done != nil {
			b.done.finish(err)
		}
	}
}

func (p *Pipeline) appendRetry(b *batch) error {
	backoff := 100 * time.Millisecond
	n := b.len()
	for {
		ctx, cancel := context.WithTimeout(p.writeCtx, time.Minute)
		var err error
		if b.prepared != nil {
			err = p.prep.AppendPrepared(ctx, b.prepared)
		} else {
			err = p.st.Append(ctx, b.events)
		}
		cancel()
		if err == nil {
			p.m.EventsWritten.Add(float64(n))
			if p.o.Live {
				now := time.Now()
				for i := range b.events {
					p.m.Lag.Observe(now.Sub(b.events[i].Time).Seconds())
				}
				for _, t := range b.times {
					p.m.Lag.Observe(now.Sub(t).Seconds())
				}
			}
			return nil
		}
		p.m.StoreErrors.Inc()
		if p.writeCtx.Err() != nil {
			p.log.Error(err, "giving up on the trace store at shutdown; these events are lost", "events", n)
			return err
		}
		p.badLog.Info("store", "appending to the trace store failed; retrying", "error", err.Error(), "events", n, "retryIn", backoff.String())
		select {
		case <-time.After(backoff):
		case <-p.writeCtx.Done():
		}
		if backoff *= 2; backoff > p.o.MaxBackoff {
			backoff = p.o.MaxBackoff
		}
	}
}

// openWAL opens the write-ahead log and starts reading it into the
// correlator from pos, the position the restored state covers: what
// follows pos was accepted before a crash or a shutdown and is read again
// (the store keeps an event once, whatever reads it again).
func (p *Pipeline) openWAL(pos wal.Pos) error {
	w, err := wal.Open(p.o.WALDir, wal.Options{
		SegmentBytes: p.o.WALSegmentBytes, MaxBytes: p.o.WALMaxBytes, Start: pos,
		OnSync: func(d time.Duration) { p.m.WALFsync.Observe(d.Seconds()) },
	})
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	p.wal = w
	r := w.NewReader(pos)
	p.fed = r.Pos()
	if p.fed != pos {
		p.log.Error(nil, "the write-ahead log does not hold the position of the state file; reading it from where it begins",
			"dir", p.o.WALDir, "statePosition", pos, "from", p.fed)
	}
	replayTo := w.Head()
	if replayTo > p.fed {
		p.log.Info("replaying the write-ahead log from the last checkpoint", "dir", p.o.WALDir, "from", p.fed, "to", replayTo, "bytes", replayTo-p.fed)
	}
	p.tailDone, p.abort = make(chan struct{}), make(chan struct{})
	p.walSizes()
	go p.tail(r, replayTo)
	return nil
}

// tail reads the write-ahead log into the correlator, in the order it was
// written, waiting at its end for the next record. When the pipeline
// closes it reads on to the end of the log as it is then (unless aborted)
// and closes in.
func (p *Pipeline) tail(r *wal.Reader, replayTo wal.Pos) {
	defer close(p.tailDone)
	defer close(p.in)
	defer r.Close()
	closed := p.closed
	var drainTo wal.Pos
	for {
		changed := p.wal.Changed() // before reading: no append is missed
		if closed == nil && r.Pos() >= drainTo {
			return
		}
		b, end, err := r.Next()
		switch {
		case err == nil:
			ch := chunk{walEnd: end}
			var derr error
			ch.transport, ch.msgs, ch.advance, derr = decodeRecord(b)
			if derr != nil {
				// its CRC matched: written so by this program, never read back
				p.m.WALSkipped.Add(float64(len(b)))
				p.log.Error(derr, "skipping a write-ahead log record", "dir", p.o.WALDir, "end", end)
			}
			if end <= replayTo {
				p.m.WALReplayed.Add(float64(len(ch.msgs)))
			}
			p.m.QueueDepth.Add(float64(len(ch.msgs)))
			select {
			case p.in <- ch:
			case <-p.abort:
				p.m.QueueDepth.Sub(float64(len(ch.msgs)))
				return
			}
		case errors.Is(err, io.EOF):
			select {
			case <-changed:
			case <-closed:
				closed, drainTo = nil, p.wal.Head()
			case <-p.abort:
				return
			}
		case errors.Is(err, wal.ErrCorrupt):
			from := r.Pos()
			to := r.SkipSegment()
			p.m.WALSkipped.Add(float64(to - from))
			p.log.Error(err, "a damaged write-ahead log segment: skipping the rest of it", "dir", p.o.WALDir, "from", from, "to", to)
		default:
			p.badLog.Info("wal read", "reading the write-ahead log failed; retrying", "error", err.Error(), "dir", p.o.WALDir)
			select {
			case <-time.After(time.Second):
			case <-p.abort:
				return
			}
		}
	}
}

// walSizes updates the write-ahead log's gauges.
func (p *Pipeline) walSizes() {
	if p.wal == nil {
		return
	}
	size, segs := p.wal.Size()
	p.m.WALBytes.Set(float64(size))
	p.m.WALSegments.Set(float64(segs))
}
