package postfix

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Trace IDs and event IDs: digests, stable across restarts and replays
// (see the package comment).

func digest(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	var stack [512]byte
	buf := stack[:0]
	if n > len(stack) {
		buf = make([]byte, 0, n)
	}
	for _, p := range parts {
		buf = append(buf, p...)
		buf = append(buf, 0)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:10])
}

// isLongQueueID reports whether a queue id is a long one, which Postfix
// never reuses (it encodes the time and the inode).
func isLongQueueID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return true
		}
	}
	return false
}

func traceIDFor(host, qid string, start time.Time) string {
	if isLongQueueID(qid) {
		return digest(host, qid)
	}
	return digest(host, qid, start.UTC().Format(time.RFC3339Nano))
}

func eventID(host, qid string, t time.Time, raw string, typ mailflow.EventType, rcpt string) string {
	// the bytes of fmt "%s\x00%s\x00%d\x00%s\x00%s\x00%s", built without fmt
	rcpt = mailflow.NormalizeAddress(rcpt)
	var stack [1024]byte
	buf := stack[:0]
	if n := len(host) + len(qid) + 20 + len(raw) + len(typ) + len(rcpt) + 5; n > len(stack) {
		buf = make([]byte, 0, n)
	}
	buf = append(buf, host...)
	buf = append(buf, 0)
	buf = append(buf, qid...)
	buf = append(buf, 0)
	buf = strconv.AppendInt(buf, t.UnixNano(), 10)
	buf = append(buf, 0)
	buf = append(buf, raw...)
	buf = append(buf, 0)
	buf = append(buf, typ...)
	buf = append(buf, 0)
	buf = append(buf, rcpt...)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}
