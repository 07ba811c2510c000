package server

import (
	"bytes"
	"context"
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
	"github.com/mailtrace/mailtrace/internal/testutil/denselog"
)

// denseLog is the event-dense Postfix log of test/ingestbench (n messages,
// inflight of them interleaved, 7 lines and 5 events each), in memory.
func denseLog(n, inflight int) []byte {
	var buf bytes.Buffer
	if _, err := denselog.Write(&buf, n, inflight, true); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
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
