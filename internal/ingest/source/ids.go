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
