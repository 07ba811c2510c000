package source

import (
	"crypto/sha256"
	"encoding/hex"
)

// Digest is a stable digest of parts, for the trace IDs and event IDs a
// source makes: the same line read again (a replay, a restart) gives the
// same IDs, so the store keeps it once.
func Digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// PackTraceID is a trace ID of 20 lower-case hex digits (the shape the
// sources' digests give, and most trace IDs have) as the 10 bytes it
// spells, for what keeps many of them (the links index, the records of
// evicted messages) without a string each; false for any other shape,
// which the caller keeps as a string. hex.EncodeToString gives it back.
func PackTraceID(id string) (b [10]byte, ok bool) {
	if len(id) != 20 || !hexLower(id) {
		return b, false
	}
	_, _ = hex.Decode(b[:], []byte(id))
	return b, true
}

func hexLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f') {
			return false
		}
	}
	return true
}
