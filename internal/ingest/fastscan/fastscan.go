// Package fastscan holds the ingest's few unsafe tricks, in one place, each
// beside the plain code it replaces (in its test, which compares the two)
// and a figure of what it buys: BenchmarkFast* against BenchmarkPlain* in
// fastscan_test.go over the first 1,000 lines of the benchmark log (in the
// cache, as a line just read is), the fastest of 5 runs on the shared
// 2-core machine of docs/benchmarks.md.
//
// They read strings without copying them and eight bytes at a time. Each
// function states what its caller must guarantee; nothing here keeps a
// reference to its arguments.
package fastscan

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

// Load64 returns the first eight bytes of s as a little-endian word
// (len(s) >= 8, else it panics). Comparing two such words compares eight
// bytes with one instruction.
//
// Buys: IndexAny3's word at a time. Alone, comparing two words is no
// faster than comparing the eight bytes as strings (2.9 ns against 2.8 ns
// a line: the compiler makes both one load).
func Load64(s string) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8))
}

// IsASCII reports whether s has no byte >= 0x80 (then it is valid UTF-8),
// sixteen bytes at a time: nearly every log line is ASCII.
//
// Buys: 24 ns a line against 46 ns for utf8.ValidString (the check every
// line gets before it is parsed).
func IsASCII(s string) bool {
	const highs = 0x8080808080808080
	i := 0
	for ; i+16 <= len(s); i += 16 {
		b := unsafe.Slice(unsafe.StringData(s[i:]), 16)
		if (binary.LittleEndian.Uint64(b)|binary.LittleEndian.Uint64(b[8:]))&highs != 0 {
			return false
		}
	}
	if i < len(s) && len(s) >= 16 {
		// the last sixteen bytes, overlapping the ones already seen
		b := unsafe.Slice(unsafe.StringData(s[len(s)-16:]), 16)
		return (binary.LittleEndian.Uint64(b)|binary.LittleEndian.Uint64(b[8:]))&highs == 0
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// IndexAny3 returns the index of the first a, b or c in s, or -1: eight
// bytes at a time, then byte by byte.
//
// Buys: the end of a syslog tag's program name ("postfix/postscreen[" and
// the like) in 12.9 ns a line against 14.3 ns for a byte loop and 59 ns
// for strings.IndexAny.
func IndexAny3(s string, a, b, c byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		v := Load64(s[i:])
		// a zero byte of v^x marks a byte equal to x; the lowest flag of
		// (y - ones) &^ y & highs is exactly the first zero byte of y
		x, y, z := v^(ones*uint64(a)), v^(ones*uint64(b)), v^(ones*uint64(c))
		m := ((x - ones) &^ x & highs) | ((y - ones) &^ y & highs) | ((z - ones) &^ z & highs)
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(s); i++ {
		if k := s[i]; k == a || k == b || k == c {
			return i
		}
	}
	return -1
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
// against 530 ns with the garbage collector's share on this loaded
// machine, and 10 MB less garbage per pass over the benchmark log.
func String(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
