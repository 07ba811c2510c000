// Package fastscan holds the ingest's few unsafe tricks, in one place, each
// beside the plain code it replaces (in its test, which compares the two)
// and a figure of what it buys: BenchmarkFast* against BenchmarkPlain* in
// fastscan_test.go over the first 1,000 lines of the benchmark log (in the
// cache, as a line just read is), the fastest of 5 runs on the shared
// 2-core machine of docs/benchmarks.md.
//
// They read strings without copying them and eight bytes at a time. Each
// function states what its caller must guarantee; nothing here keeps a
// reference to its arguments. A trick that stops paying goes: a
// word-at-a-time search for the end of a syslog tag's program name was
// no faster than a byte loop over names that short (8.9 ns against 8.5),
// and the syslog parser has the loop.
package fastscan

import (
	"encoding/binary"
	"unicode/utf8"
	"unsafe"
)

// Load64 returns the first eight bytes of s as a little-endian word
// (len(s) >= 8, else it panics). Comparing two such words compares eight
// bytes with one instruction.
//
// Buys: the syslog header cache's first check (do the last eight bytes of
// a remembered header match this line?) in 1.2 ns against 2.7 ns for
// comparing the eight bytes as strings, a call to the runtime's memequal.
func Load64(s string) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8))
}

// IsASCII reports whether s has no byte >= 0x80 (then it is valid UTF-8),
// sixteen bytes at a time: nearly every log line is ASCII.
//
// Buys: 5.1 ns a line against 10.4 ns for utf8.ValidString (the check
// every line gets before it is parsed), 32 bytes a step with one bounds
// check.
func IsASCII(s string) bool {
	const highs = 0x8080808080808080
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	le := binary.LittleEndian
	i := 0
	for ; i+32 <= len(b); i += 32 {
		w := b[i : i+32 : i+32] // one bounds check for the four words
		if (le.Uint64(w)|le.Uint64(w[8:])|le.Uint64(w[16:])|le.Uint64(w[24:]))&highs != 0 {
			return false
		}
	}
	if len(b) >= 8 {
		// the words left, the last one overlapping the bytes already seen
		for ; i+8 <= len(b); i += 8 {
			if le.Uint64(b[i:i+8:i+8])&highs != 0 {
				return false
			}
		}
		return le.Uint64(b[len(b)-8:])&highs == 0
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Offset returns where sub lies in s when sub is a substring of s (shares
// its bytes: s[i:j] for some i < j), else false. Equal bytes elsewhere do
// not count, and neither does an empty sub.
//
// Buys: a line that must outlive its read buffer is copied once, and its
// fields (host, program, message: views of the line) are found in the
// copy by their offsets: one allocation instead of four; and the syslog
// header cache records where a header's fields are without tracking
// indices through the parse.
func Offset(sub, s string) (int, bool) {
	if len(sub) == 0 {
		return 0, false // no bytes to locate
	}
	off := uintptr(unsafe.Pointer(unsafe.StringData(sub))) - uintptr(unsafe.Pointer(unsafe.StringData(s)))
	if off > uintptr(len(s)) || int(off)+len(sub) > len(s) {
		return 0, false
	}
	return int(off), true
}

// String returns b's bytes as a string without copying them. The caller
// must not change b while the string (or anything sliced from it) is in
// use: the ingest reads lines out of a read buffer this way and copies
// only what it keeps.
//
// Buys: no allocation a line against one for string(b): 0.7 ns a line
// against 105 ns with the garbage collector's share, and 10 MB less
// garbage per pass over the benchmark log.
func String(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
