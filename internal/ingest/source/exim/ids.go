package exim

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Trace IDs and event IDs: digests, stable across restarts and replays
// (the Postfix source's scheme, the same digests, so that an ID looks the
// same whichever MTA logged it).

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}

// traceIDFor is a message's trace ID: Exim never reuses a message id, so
// host and id say it all.
func traceIDFor(host, id string) string { return digest(host, id) }

func eventID(host, id string, t time.Time, raw string, typ mailflow.EventType, rcpt string) string {
	var stack [1024]byte
	buf := stack[:0]
	buf = append(buf, host...)
	buf = append(buf, 0)
	buf = append(buf, id...)
	buf = append(buf, 0)
	buf = strconv.AppendInt(buf, t.UnixNano(), 10)
	buf = append(buf, 0)
	buf = append(buf, raw...)
	buf = append(buf, 0)
	buf = append(buf, typ...)
	buf = append(buf, 0)
	buf = append(buf, mailflow.NormalizeAddress(rcpt)...)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}
