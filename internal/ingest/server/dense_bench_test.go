package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// denseLog is the event-dense Postfix log of test/ingestbench (n messages,
// inflight of them interleaved, 7 lines and 5 events each), in memory.
func denseLog(n, inflight int) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	emit := func(sec int, prog, format string, a ...any) {
		fmt.Fprintf(w, "%s relay1 postfix/%s[%d]: ", t0.Add(time.Duration(sec)*time.Second).Format("Jan _2 15:04:05"), prog, 1000+len(prog))
		fmt.Fprintf(w, format, a...)
		w.WriteByte('\n')
	}
	qid := func(i int) string { return fmt.Sprintf("%X%06X", 0xA0+i%16, i) }
	const steps = 7
	for base := 0; base < n; base += inflight {
		end := min(base+inflight, n)
		for s := 0; s < steps; s++ {
			for i := base; i < end; i++ {
				q, sec := qid(i), (base/inflight)*(steps+1)+s
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
	w.Flush()
	return buf.Bytes()
}

// discardStore takes every append and keeps nothing: the ingester alone.
type discardStore struct {
	store.Store
	events atomic.Int64
}

func (s *discardStore) Append(_ context.Context, evs []mailflow.Event) error {
	s.events.Add(int64(len(evs)))
	return nil
}

// BenchmarkIngestFilesDense: IngestFiles (the backfill's whole way from a
// gzipped file to the store's Append: reading, parsing, correlating,
// batching, handing over to the writer) on the event-dense log of
// test/ingestbench, 20,000 messages, into a store that discards: the
// ingester's own cost per event, CPU (both cores) and allocations.
func BenchmarkIngestFilesDense(b *testing.B) {
	data := denseLog(20_000, 2000)
	path := gzipFile(b, data)
	cfg := ingest.Config{AcceptedDomains: []string{"example.com"}}
	run := func() int64 {
		st := &discardStore{}
		if _, err := IngestFiles(context.Background(), st, []string{path}, FileOptions{Pipeline: PipelineOptions{Correlator: cfg}, Log: logr.Discard()}); err != nil {
			b.Fatal(err)
		}
		return st.events.Load()
	}
	events := run() // warm up
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&m1)
	n := float64(events) * float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/event")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/event")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "B/event")
}

// cpuTime is the CPU time (user+system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recordingStore keeps a copy of every event appended, and the address
// of each batch's first element.
type recordingStore struct {
	store.Store
	events []mailflow.Event
	firsts []*mailflow.Event
}

func (s *recordingStore) Append(_ context.Context, evs []mailflow.Event) error {
	s.events = append(s.events, evs...)
	s.firsts = append(s.firsts, &evs[0])
	return nil
}

// A backfill reuses its batches' slices once the store is done with them
// (and the correlator its slice of a line's events): the store gets the
// very events, in the same order, that IngestReader hands out in batches
// of their own.
func TestIngestFilesReusesBatches(t *testing.T) {
	data := denseLog(6000, 600) // 30,000 events: batches of BackfillBatchSize
	path := gzipFile(t, data)
	cfg := ingest.Config{AcceptedDomains: []string{"example.com"}}
	st := &recordingStore{}
	if _, err := IngestFiles(context.Background(), st, []string{path}, FileOptions{Pipeline: PipelineOptions{Correlator: cfg}, Log: logr.Discard()}); err != nil {
		t.Fatal(err)
	}
	var want []mailflow.Event
	if _, err := ingest.IngestReader(context.Background(), bytes.NewReader(data), cfg, func(evs []mailflow.Event) error {
		want = append(want, evs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(st.events) != len(want) || len(want) != 30_000 {
		t.Fatalf("%d events stored, %d read, want 30000", len(st.events), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(st.events[i], want[i]) {
			t.Fatalf("event %d: stored %+v, read %+v", i, st.events[i], want[i])
		}
	}
	reused := false
	for i, p := range st.firsts {
		for _, q := range st.firsts[:i] {
			reused = reused || p == q
		}
	}
	if len(st.firsts) < 3 || !reused {
		t.Errorf("%d batches, none in a slice of an earlier one", len(st.firsts))
	}
}
