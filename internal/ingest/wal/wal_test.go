package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func rec(i int) []byte {
	return []byte(fmt.Sprintf("record %04d %s", i, bytes.Repeat([]byte{'x'}, i%50)))
}

// readAll reads every record from pos and the position after the last.
func readAll(t *testing.T, w *WAL, pos Pos) ([]string, Pos) {
	t.Helper()
	r := w.NewReader(pos)
	defer r.Close()
	var out []string
	for {
		b, end, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, end
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
}

func open(t *testing.T, dir string, o Options) *WAL {
	t.Helper()
	w, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func appendN(t *testing.T, w *WAL, from, to int) []Pos {
	t.Helper()
	var ends []Pos
	for i := from; i < to; i++ {
		end, err := w.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	if err := w.Sync(w.Head()); err != nil {
		t.Fatal(err)
	}
	return ends
}

func TestAppendReopenReadFrom(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{SegmentBytes: 300})
	ends := appendN(t, w, 0, 40)
	if _, n := w.Size(); n < 5 {
		t.Fatalf("%d segments, want several of 300 bytes", n)
	}
	w.Close()
	w = open(t, dir, Options{SegmentBytes: 300})
	got, end := readAll(t, w, 0)
	if len(got) != 40 || got[39] != string(rec(39)) || end != ends[39] || w.Head() != ends[39] {
		t.Fatalf("read %d records to %d, head %d; want 40 to %d", len(got), end, w.Head(), ends[39])
	}
	// from a record's position: the records after it
	got, _ = readAll(t, w, ends[24])
	if len(got) != 15 || got[0] != string(rec(25)) {
		t.Fatalf("from record 25: %d records, first %q", len(got), got[0])
	}
	// appends go on after the reopened head
	appendN(t, w, 40, 45)
	if got, _ = readAll(t, w, ends[39]); len(got) != 5 || got[0] != string(rec(40)) {
		t.Fatalf("after reopen: %q", got)
	}
}

func TestTornTailTruncated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keep   int
		damage func(t *testing.T, path string, size int64)
	}{
		{"cut short", 9, func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-3); err != nil {
				t.Fatal(err)
			}
		}},
		{"zeros after the last record", 10, func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			_, _ = f.Write(make([]byte, 4096))
			f.Close()
		}},
		{"CRC mismatch in the last record", 9, func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			_, _ = f.WriteAt([]byte{'#'}, size-2)
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := open(t, dir, Options{})
			ends := appendN(t, w, 0, 10)
			w.Close()
			path := filepath.Join(dir, segName(0))
			tc.damage(t, path, int64(ends[9]))
			w = open(t, dir, Options{})
			got, end := readAll(t, w, 0)
			last := ends[tc.keep-1]
			if len(got) != tc.keep || end != last || w.Head() != last {
				t.Fatalf("%d records to %d (head %d), want the %d whole ones to %d", len(got), end, w.Head(), tc.keep, last)
			}
			if fi, _ := os.Stat(path); fi.Size() != int64(last) {
				t.Fatalf("segment of %d bytes, want it truncated to %d", fi.Size(), last)
			}
			// the next record follows the last whole one
			appendN(t, w, 100, 101)
			if got, _ = readAll(t, w, last); len(got) != 1 || got[0] != string(rec(100)) {
				t.Fatalf("after the tail: %q", got)
			}
		})
	}
}

func TestCorruptRecordInClosedSegment(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{SegmentBytes: 200})
	appendN(t, w, 0, 30)
	w.Close()
	// damage the first segment's second record
	first := filepath.Join(dir, segName(0))
	b, _ := os.ReadFile(first)
	n := len(rec(0)) + headerBytes
	b[n+headerBytes+1] ^= 0xff
	if err := os.WriteFile(first, b, 0o600); err != nil {
		t.Fatal(err)
	}
	w = open(t, dir, Options{SegmentBytes: 200})
	r := w.NewReader(0)
	defer r.Close()
	if p, _, err := r.Next(); err != nil || string(p) != string(rec(0)) {
		t.Fatalf("first record: %q %v", p, err)
	}
	if _, _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("second record: %v, want ErrCorrupt", err)
	}
	skipped := r.SkipSegment()
	p, _, err := r.Next()
	if err != nil || skipped == 0 {
		t.Fatalf("after the skip to %d: %v", skipped, err)
	}
	// the records of the next segments are all there
	rest := 1
	for ; err == nil; _, _, err = r.Next() {
		rest++
	}
	if !errors.Is(err, io.EOF) || string(p) == string(rec(1)) || rest < 20 {
		t.Fatalf("after the damaged segment: %d records, then %v", rest, err)
	}
}

func TestTruncateBefore(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{SegmentBytes: 300})
	ends := appendN(t, w, 0, 40)
	size0, segs0 := w.Size()
	if err := w.TruncateBefore(ends[19]); err != nil {
		t.Fatal(err)
	}
	size1, segs1 := w.Size()
	if segs1 >= segs0 || size1 >= size0 || w.First() > ends[19] {
		t.Fatalf("segments %d -> %d, bytes %d -> %d, first %d (pos %d)", segs0, segs1, size0, size1, w.First(), ends[19])
	}
	// what comes after pos is all there, before it some may be
	got, _ := readAll(t, w, ends[19])
	if len(got) != 20 || got[0] != string(rec(20)) {
		t.Fatalf("after truncation: %d records from %q", len(got), got[0])
	}
	// the open segment is never deleted, and positions go on
	if err := w.TruncateBefore(w.Head() + 1000); err != nil {
		t.Fatal(err)
	}
	if _, n := w.Size(); n != 1 {
		t.Fatalf("%d segments after truncating everything", n)
	}
	w.Close()
	w = open(t, dir, Options{SegmentBytes: 300})
	if w.Head() != ends[39] {
		t.Fatalf("head %d after reopen, want %d", w.Head(), ends[39])
	}
	// an empty directory starts at Options.Start
	w2 := open(t, t.TempDir(), Options{Start: 12345})
	end, err := w2.Append([]byte("x"))
	if err != nil || end != 12345+headerBytes+1 {
		t.Fatalf("first append in a log from 12345 ends at %d: %v", end, err)
	}
}

func TestFullAndFailedWrites(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{MaxBytes: 1000})
	var err error
	n := 0
	for ; err == nil; n++ {
		_, err = w.Append(rec(1))
	}
	if !errors.Is(err, ErrFull) || int64(w.Head()) > 1000 {
		t.Fatalf("after %d appends: %v, head %d", n, err, w.Head())
	}
	// a disk that fails mid-record: nothing of it stays, the log goes on
	dir = t.TempDir()
	fail := true
	w = open(t, dir, Options{write: func(f *os.File, b []byte) (int, error) {
		if fail {
			n, _ := f.Write(b[:len(b)/2])
			return n, syscall.ENOSPC
		}
		return f.Write(b)
	}})
	fail = false
	appendN(t, w, 0, 3)
	fail = true
	if _, err := w.Append(rec(3)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	fail = false
	appendN(t, w, 4, 5)
	w.Close()
	w = open(t, dir, Options{})
	got, _ := readAll(t, w, 0)
	if len(got) != 4 || got[3] != string(rec(4)) {
		t.Fatalf("after the failed write: %q", got)
	}
}

// Concurrent appenders share fsyncs, and each sees its record synced.
func TestGroupCommit(t *testing.T) {
	var syncs atomic.Int64
	dir := t.TempDir()
	w := open(t, dir, Options{SegmentBytes: 64 << 10, OnSync: func(time.Duration) { syncs.Add(1) }})
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				end, err := w.Append(rec(g*each + i))
				if err == nil {
					err = w.Sync(end)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got, _ := readAll(t, w, 0); len(got) != writers*each {
		t.Fatalf("%d records, want %d", len(got), writers*each)
	}
	t.Logf("%d synced appends, %d fsyncs", writers*each, syncs.Load())
	if syncs.Load() >= writers*each {
		t.Errorf("%d fsyncs for %d appends: none shared", syncs.Load(), writers*each)
	}
}

// A failed fsync fails the log for good (the kernel may have dropped the
// pages it could not write): every Append and Sync after it fails, Err says
// so; reopening the log goes on after the records that are on disk.
func TestFailedFsyncFailsTheLog(t *testing.T) {
	dir := t.TempDir()
	fail := false
	w := open(t, dir, Options{sync: func(f *os.File) error {
		if fail {
			return syscall.EIO
		}
		return f.Sync()
	}})
	appendN(t, w, 0, 3)
	fail = true
	end, err := w.Append(rec(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(end); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with a failing disk: %v", err)
	}
	fail = false
	if _, err := w.Append(rec(4)); !errors.Is(err, syscall.EIO) || !errors.Is(w.Err(), syscall.EIO) {
		t.Fatalf("Append after a failed fsync: %v (Err %v), want the log failed", err, w.Err())
	}
	w.Close()
	w = open(t, dir, Options{})
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	appendN(t, w, 5, 6)
	got, _ := readAll(t, w, 0)
	if len(got) < 4 || got[len(got)-1] != string(rec(5)) {
		t.Fatalf("after reopening: %q", got)
	}
}

func TestOneProcessAtATime(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{})
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second Open of the same log: %v", err)
	}
	w.Close()
	w2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	w2.Close()
}
