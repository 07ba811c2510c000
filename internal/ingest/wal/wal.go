// Package wal is the ingester's write-ahead log: an append-only log of
// records (the raw messages the ingester accepted) in segment files, made
// durable in groups (one fsync for every append waiting at the time), read
// back from any position, and deleted behind a position once what it
// covers is kept elsewhere (the correlator's checkpoint).
//
// # Format
//
// A position (Pos) is a byte offset in the log as if it were one file; a
// segment file is named after the position of its first byte
// ("00000000000000123456.wal"), so a position finds its segment by name.
// A record is a header of 8 bytes, its payload's length and the CRC-32C of
// length and payload (both little-endian), then the payload.
//
// # What survives a crash
//
// Append writes a record with one write(2) and returns the position after
// it; Sync returns once every record up to a position is on disk. A crash
// keeps everything synced and may keep a torn record after it (a record
// cut short, or whose bytes the file system never wrote): Open checks the
// records of the last segment and truncates the log at the first that is
// cut short or whose CRC does not match. Earlier segments were synced
// before the next one was begun; a record in them that fails its CRC (a
// damaged disk) is reported by the Reader (ErrCorrupt), which can skip the
// rest of that segment.
//
// # Why not a library
//
// The Go modules of write-ahead logs this project could use either keep
// no checksum per record (a torn tail is read as data), read a whole
// segment into memory to read a record, or rewrite a segment to delete its
// front; none shares one fsync among concurrent appenders. The log here is
// the few hundred lines those properties take.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pos is a position in the log: the offset of a byte as if the segments
// were one file.
type Pos uint64

const (
	headerBytes = 8
	suffix      = ".wal"
	// MaxRecordBytes bounds a record's payload: a longer length in a
	// header is damage, not data.
	MaxRecordBytes = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Errors.
var (
	// ErrFull: the record would take the log over Options.MaxBytes.
	ErrFull = errors.New("wal: the write-ahead log is full")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: closed")
	// ErrCorrupt: a record failed its check (see Reader.Next).
	ErrCorrupt = errors.New("wal: damaged record")
)

// Options configure a log.
type Options struct {
	// SegmentBytes: a segment that reaches this size is closed and the
	// next record begins a new one (default 64 MiB).
	SegmentBytes int64
	// MaxBytes caps the size of the log (0: no cap): an Append that would
	// take it over fails with ErrFull until TruncateBefore frees space.
	MaxBytes int64
	// Start is where an empty log begins: the position a checkpoint
	// covers, so that positions never go back when the log's files were
	// lost.
	Start Pos
	// OnSync, when set, is told how long each fsync took (a metric).
	OnSync func(time.Duration)
	// write, when set, replaces the write of a record (tests inject a
	// full disk with it).
	write func(f *os.File, b []byte) (int, error)
	// sync, when set, replaces fsync (tests inject a failing disk).
	sync func(f *os.File) error
}

type segment struct {
	start Pos
	size  int64 // of a closed segment; the open one's is head-start
	path  string
}

// WAL is a write-ahead log. Its methods are safe for concurrent use.
type WAL struct {
	dir string
	o   Options

	mu      sync.Mutex
	cond    *sync.Cond // syncing ended, or the head moved
	segs    []segment  // oldest first; the last is open
	f       *os.File   // the last segment
	head    Pos        // after the last record written
	synced  Pos        // after the last record on disk
	syncing bool
	failed  error // a failed fsync: the log takes nothing more
	closed  bool
	buf     []byte
	notify  chan struct{}
	lock    *os.File // the directory's lock, held while open
}

// Open opens (or creates) the log in dir, truncating a torn tail.
func Open(dir string, o Options) (*WAL, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	w, err := openLog(dir, o)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	w.lock = lock
	return w, nil
}

func openLog(dir string, o Options) (*WAL, error) {
	w := &WAL{dir: dir, o: o, notify: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, suffix) || e.IsDir() {
			continue
		}
		start, err := strconv.ParseUint(strings.TrimSuffix(name, suffix), 10, 64)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("wal: %w", err)
		}
		w.segs = append(w.segs, segment{start: Pos(start), size: fi.Size(), path: filepath.Join(dir, name)})
	}
	slices.SortFunc(w.segs, func(a, b segment) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	if len(w.segs) == 0 {
		if err := w.create(o.Start); err != nil {
			return nil, err
		}
		return w, nil
	}
	last := &w.segs[len(w.segs)-1]
	valid, err := validLength(last.path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(last.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	if valid != last.size {
		// a torn tail: never synced, so never acknowledged
		if err := f.Truncate(valid); err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: truncating a torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: %w", err)
		}
	}
	if _, err := f.Seek(valid, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: %w", err)
	}
	w.f = f
	w.head = last.start + Pos(valid)
	w.synced = w.head
	return w, nil
}

// validLength reads a segment's records and returns the length of its
// part that holds whole records with the right CRC.
func validLength(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	var off int64
	var hdr [headerBytes]byte
	var payload []byte
	for {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return off, nil
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n == 0 || n > MaxRecordBytes {
			return off, nil
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := f.ReadAt(payload, off+headerBytes); err != nil {
			return off, nil
		}
		if checksum(hdr[:4], payload) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, nil
		}
		off += headerBytes + int64(n)
	}
}

func checksum(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, crcTable), crcTable, payload)
}

func segName(start Pos) string { return fmt.Sprintf("%020d%s", uint64(start), suffix) }

// create begins a segment at start (w.mu held or not shared yet).
func (w *WAL) create(start Pos) error {
	path := filepath.Join(w.dir, segName(start))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.segs = append(w.segs, segment{start: start, path: path})
	w.f, w.head, w.synced = f, start, start
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: syncing the directory: %w", err)
	}
	return nil
}

// Append writes a record (not yet durable: see Sync) and returns the
// position after it. An error leaves the log as it was: nothing of the
// record is kept.
func (w *WAL) Append(payload []byte) (Pos, error) {
	if len(payload) == 0 || len(payload) > MaxRecordBytes {
		return 0, fmt.Errorf("wal: a record of %d bytes", len(payload))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	if w.failed != nil {
		return 0, w.failed
	}
	n := int64(headerBytes + len(payload))
	if w.o.MaxBytes > 0 && w.sizeLocked()+n > w.o.MaxBytes {
		return 0, ErrFull
	}
	if cur := int64(w.head - w.segs[len(w.segs)-1].start); cur > 0 && cur+n > w.o.SegmentBytes {
		if err := w.roll(); err != nil {
			return 0, err
		}
	}
	b := w.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, checksum(b[:4], payload))
	b = append(b, payload...)
	write := w.o.write
	if write == nil {
		write = (*os.File).Write
	}
	if _, err := write(w.f, b); err != nil {
		// a part may be written: cut it off, so the next record follows
		// the last whole one
		off := int64(w.head - w.segs[len(w.segs)-1].start)
		if terr := w.f.Truncate(off); terr != nil {
			w.failed = fmt.Errorf("wal: a failed write could not be undone: %w", terr)
		} else if _, serr := w.f.Seek(off, io.SeekStart); serr != nil {
			w.failed = fmt.Errorf("wal: a failed write could not be undone: %w", serr)
		}
		return 0, fmt.Errorf("wal: %w", err)
	}
	if cap(b) <= 1<<20 {
		w.buf = b[:0]
	}
	w.head += Pos(n)
	close(w.notify)
	w.notify = make(chan struct{})
	return w.head, nil
}

// roll syncs and closes the open segment and begins the next (w.mu held).
func (w *WAL) roll() error {
	for w.syncing {
		w.cond.Wait()
	}
	if w.closed {
		return ErrClosed
	}
	if w.failed != nil {
		return w.failed
	}
	if w.head == w.segs[len(w.segs)-1].start {
		return nil // another Append rolled while this one waited
	}
	if w.synced < w.head {
		if err := w.fsync(w.f); err != nil {
			w.failed = err
			return err
		}
		w.synced = w.head
	}
	last := &w.segs[len(w.segs)-1]
	last.size = int64(w.head - last.start)
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	return w.create(w.head)
}

func (w *WAL) fsync(f *os.File) error {
	t := time.Now()
	sync := datasync
	if w.o.sync != nil {
		sync = w.o.sync
	}
	err := sync(f)
	if w.o.OnSync != nil {
		w.o.OnSync(time.Since(t))
	}
	if err != nil {
		return fmt.Errorf("wal: fsync: %w", err)
	}
	return nil
}

// Sync returns once every record before pos is on disk. Concurrent calls
// share one fsync: while one runs, the others wait, and the next covers
// every record written by then. A failed fsync fails the log for good
// (the kernel may have dropped the pages it could not write).
func (w *WAL) Sync(pos Pos) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.synced < pos {
		if w.failed != nil {
			return w.failed
		}
		if w.closed {
			return ErrClosed
		}
		if w.syncing {
			w.cond.Wait()
			continue
		}
		w.syncing = true
		target, f := w.head, w.f
		w.mu.Unlock()
		err := w.fsync(f)
		w.mu.Lock()
		w.syncing = false
		if err != nil {
			w.failed = err
		} else if target > w.synced {
			w.synced = target
		}
		w.cond.Broadcast()
	}
	return nil
}

// Err returns the error that failed the log for good (a failed fsync, a
// failed write that could not be undone), nil while it works: reopening
// it (a restart) truncates what may be torn and goes on.
func (w *WAL) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// Head returns the position after the last record written.
func (w *WAL) Head() Pos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.head
}

// First returns the position of the oldest record kept.
func (w *WAL) First() Pos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.segs[0].start
}

// Changed returns a channel closed at the next Append.
func (w *WAL) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.notify
}

// Size returns the bytes the log's segments hold, and their number.
func (w *WAL) Size() (int64, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sizeLocked(), len(w.segs)
}

func (w *WAL) sizeLocked() int64 { return int64(w.head - w.segs[0].start) }

// TruncateBefore deletes the segments that hold only records before pos
// (the open segment stays). Call it once what those records gave is kept
// elsewhere.
func (w *WAL) TruncateBefore(pos Pos) error {
	w.mu.Lock()
	var gone []segment
	for len(w.segs) > 1 && w.segs[1].start <= pos {
		gone = append(gone, w.segs[0])
		w.segs = w.segs[1:]
	}
	w.mu.Unlock()
	var err error
	for _, s := range gone {
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("wal: %w", rerr))
		}
	}
	if len(gone) > 0 && err == nil {
		err = syncDir(w.dir)
	}
	return err
}

// Close closes the log (what was not synced may be lost, as in a crash).
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	for w.syncing {
		w.cond.Wait()
	}
	w.closed = true
	w.cond.Broadcast()
	close(w.notify)
	w.notify = make(chan struct{})
	var err error
	if w.failed == nil && w.synced < w.head {
		err = w.fsync(w.f)
	}
	err = errors.Join(err, w.f.Close())
	if w.lock != nil {
		err = errors.Join(err, w.lock.Close())
	}
	return err
}

// locate returns the segment holding pos, where its records end for now,
// and where the next segment begins (hasNext false for the open one).
func (w *WAL) locate(pos Pos) (s segment, end, next Pos, hasNext, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, found := slices.BinarySearchFunc(w.segs, pos, func(s segment, p Pos) int {
		switch {
		case s.start < p:
			return -1
		case s.start > p:
			return 1
		}
		return 0
	})
	if !found {
		i--
	}
	if i < 0 {
		return segment{}, 0, 0, false, false
	}
	s, end = w.segs[i], w.head
	if i < len(w.segs)-1 {
		end, next, hasNext = s.start+Pos(s.size), w.segs[i+1].start, true
	}
	return s, end, next, hasNext, true
}

// Reader reads records from a position on.
type Reader struct {
	w   *WAL
	pos Pos
	seg segment
	end Pos // of seg, as last seen
	f   *os.File
	buf []byte
}

// NewReader returns a reader of the records from pos (a position Append
// returned, or First) on; a pos before First reads from First, one after
// Head from Head.
func (w *WAL) NewReader(pos Pos) *Reader {
	if first := w.First(); pos < first {
		pos = first
	}
	if head := w.Head(); pos > head {
		pos = head
	}
	return &Reader{w: w, pos: pos}
}

// Pos returns the position of the next record.
func (r *Reader) Pos() Pos { return r.pos }

// Next returns the next record's payload (valid until the next call) and
// the position after it; io.EOF when it has read every record written so
// far (call again after Changed); ErrCorrupt for a record that fails its
// check (SkipSegment goes on after it).
func (r *Reader) Next() ([]byte, Pos, error) {
	if r.f == nil || r.pos >= r.end {
		if err := r.open(); err != nil {
			return nil, r.pos, err
		}
		if r.pos >= r.end {
			return nil, r.pos, io.EOF
		}
	}
	off := int64(r.pos - r.seg.start)
	var hdr [headerBytes]byte
	if r.pos+headerBytes > r.end {
		return nil, r.pos, fmt.Errorf("%w at %d: a header cut short", ErrCorrupt, r.pos)
	}
	if _, err := r.f.ReadAt(hdr[:], off); err != nil {
		return nil, r.pos, fmt.Errorf("%w at %d: %v", ErrCorrupt, r.pos, err)
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	if n == 0 || n > MaxRecordBytes || r.pos+headerBytes+Pos(n) > r.end {
		return nil, r.pos, fmt.Errorf("%w at %d: a length of %d", ErrCorrupt, r.pos, n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := r.f.ReadAt(b, off+headerBytes); err != nil {
		return nil, r.pos, fmt.Errorf("%w at %d: %v", ErrCorrupt, r.pos, err)
	}
	if checksum(hdr[:4], b) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, r.pos, fmt.Errorf("%w at %d: CRC mismatch", ErrCorrupt, r.pos)
	}
	r.pos += headerBytes + Pos(n)
	if cap(r.buf) > 1<<20 {
		r.buf = nil // a large request's record is not kept
	}
	return b, r.pos, nil
}

// open finds the segment of r.pos (the next one at the end of a closed
// segment) and how far its records go.
func (r *Reader) open() error {
	s, end, next, hasNext, ok := r.w.locate(r.pos)
	if !ok {
		r.pos = r.w.First() // deleted behind the reader
		if s, end, next, hasNext, ok = r.w.locate(r.pos); !ok {
			return fmt.Errorf("wal: no segment holds position %d", r.pos)
		}
	}
	if r.pos >= end && hasNext {
		r.pos = next
		if s, end, _, _, ok = r.w.locate(r.pos); !ok {
			return fmt.Errorf("wal: no segment holds position %d", r.pos)
		}
	}
	if r.f == nil || r.seg.path != s.path {
		if r.f != nil {
			r.f.Close()
		}
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("wal: %w", err)
		}
		r.f = f
	}
	r.seg, r.end = s, end
	return nil
}

// SkipSegment moves past the rest of the current segment (after
// ErrCorrupt: what follows a damaged record in its segment cannot be
// framed) and returns the position it skipped to.
func (r *Reader) SkipSegment() Pos {
	if _, _, next, hasNext, ok := r.w.locate(r.pos); ok {
		if hasNext {
			r.pos = next
		} else {
			r.pos = r.w.Head()
		}
	}
	return r.pos
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
