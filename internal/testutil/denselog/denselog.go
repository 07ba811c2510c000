// Package denselog writes the event-dense Postfix log the ingest
// benchmarks share (test/ingestbench on the real binary,
// internal/ingest/server's on the backfill path): n messages, inflight of
// them interleaved, every line an event or a fact of one.
package denselog

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// Write writes the log of n messages to out, a window of inflight
// messages walking step by step, a second a step: client, Message-ID,
// sender, a deferral, two deliveries and the removal (7 lines each). finish false leaves every message in the queue (no delivery, no
// removal): 3 lines each, none of which ends the message. It returns the
// lines written.
func Write(out io.Writer, n, inflight int, finish bool) (lines int, err error) {
	w := bufio.NewWriterSize(out, 1<<20)
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	stamp := func(sec int) string { return t0.Add(time.Duration(sec) * time.Second).Format("Jan _2 15:04:05") }
	emit := func(sec int, prog, format string, a ...any) {
		fmt.Fprintf(w, "%s relay1 postfix/%s[%d]: ", stamp(sec), prog, 1000+len(prog))
		fmt.Fprintf(w, format, a...)
		w.WriteByte('\n')
		lines++
	}
	qid := func(i int) string { return fmt.Sprintf("%X%06X", 0xA0+i%16, i) }
	// A window of inflight messages walks step by step, a second a step.
	const steps = 7
	stepsFor := 3
	if finish {
		stepsFor = steps
	}
	for base := 0; base < n; base += inflight {
		end := min(base+inflight, n)
		for s := 0; s < stepsFor; s++ {
			for i := base; i < end; i++ {
				q, sec := qid(i), (base/inflight)*(steps+1)+s // time never goes back, as in a real log
				switch s {
				case 0:
					emit(sec, "smtpd", "%s: client=mail%d.example.net[192.0.2.%d]", q, i%97, 1+i%250)
				case 1:
					emit(sec, "cleanup", "%s: message-id=<%d.dense@example.net>", q, i)
				case 2:
					emit(sec, "qmgr", "%s: from=<sender%d@example.net>, size=%d, nrcpt=2 (queue active)", q, i%5000, 2000+i%90000)
				case 3:
					emit(sec, "smtp", "%s: to=<user%d@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.4.1, status=deferred (connect to mx.example.org[198.51.100.7]:25: Connection timed out)", q, i%20000)
				case 4:
					emit(sec, "smtp", "%s: to=<other%d@example.com>, relay=mx.example.com[203.0.113.9]:25, delay=1.4, delays=0.1/0/0.5/0.8, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X%d)", q, i%7000, i)
				case 5:
					emit(sec, "smtp", "%s: to=<user%d@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=3.2, delays=2.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as Y%d)", q, i%20000, i)
				case 6:
					emit(sec, "qmgr", "%s: removed", q)
				}
			}
		}
	}
	return lines, w.Flush()
}
