package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// EnvFloodBytes sets how much the flood test sends (e.g. "1G"; default
// 100M). `make test-faults` sends 1 GB.
const EnvFloodBytes = "MAILTRACE_FLOOD_BYTES"

// floodHeapBound is the most heap in use the ingester may reach under the
// flood: generous, well below "grows with the input".
const floodHeapBound = 256 << 20

func floodBytes(t testing.TB) int64 {
	v := os.Getenv(EnvFloodBytes)
	if v == "" {
		return 100 << 20
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a size such as 1G or 100M", EnvFloodBytes, os.Getenv(EnvFloodBytes))
	}
	return n * mult
}

// slowStore takes events slowly (a pause per append, a long stall now and
// then) and keeps only their number, so the ingester's memory is what is
// measured.
type slowStore struct {
	store.Store
	events, calls atomic.Int64
}

func (s *slowStore) Append(ctx context.Context, evs []mailflow.Event) error {
	n := s.calls.Add(1)
	d := time.Millisecond
	if n%500 == 0 {
		d = 200 * time.Millisecond
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return ctx.Err()
	}
	s.events.Add(int64(len(evs)))
	return nil
}

// flood writes about size bytes of lines to w: whole Postfix messages
// (four lines each, log time advancing a second a message, unique queue
// ids), one in a hundred left unfinished, and garbage between them: text,
// binary, and lines over the line limit. It returns the lines written and
// how many of them are over the limit.
func flood(w *bufio.Writer, host string, size int64, maxLine int) (lines, tooLong int64, err error) {
	t0 := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	long := strings.Repeat("L", maxLine+100)
	var written int64
	put := func(s string) {
		if err != nil {
			return
		}
		var n int
		n, err = w.WriteString(s)
		written += int64(n)
		if err == nil {
			err = w.WriteByte('\n')
			written++
		}
		lines++
	}
	for i := int64(0); written < size && err == nil; i++ {
		ts := t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		qid := fmt.Sprintf("%011X", i)
		put(ts + " " + host + " postfix/smtpd[101]: " + qid + ": client=mx.example.net[192.0.2.1]")
		put(ts + " " + host + " postfix/qmgr[102]: " + qid + ": from=<a" + strconv.FormatInt(i%977, 10) + "@example.net>, size=1234, nrcpt=1 (queue active)")
		if i%100 == 7 {
			continue // never finished
		}
		put(ts + " " + host + " postfix/smtp[103]: " + qid + ": to=<b@example.com>, relay=r[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 ok)")
		put(ts + " " + host + " postfix/qmgr[102]: " + qid + ": removed")
		switch i % 4 {
		case 0:
			put("garbage garbage " + qid + " garbage garbage garbage garbage garbage garbage garbage garbage")
		case 1:
			put(ts + " " + host + " dovecot[77]: imap-login: Login: user=<u@example.com>, method=PLAIN, rip=192.0.2.9")
		case 2:
			put("\x00\x01\x02\xff\xfe binary \x80\x81 junk " + qid)
		}
		if i%5000 == 4999 {
			put(long)
			tooLong++
		}
	}
	if err == nil {
		err = w.Flush()
	}
	return lines, tooLong, err
}

// A flood of lines (100 MB by default, 1 GB under `make test-faults`) over
// four TCP connections on loopback into a slow store: the ingester reads
// everything, stores every event it made, and its heap stays under a
// bound that does not grow with the input, because full queues stop the
// readers (backpressure) instead of buffering.
func TestFloodMemoryBounded(t *testing.T) {
	size := floodBytes(t)
	ss := &slowStore{Store: openStore(t)}
	reg := prometheus.NewRegistry()
	const conns = 4
	s := New(ss, Options{SyslogTCP: "127.0.0.1:0", InsecureNoAuth: true, Registerer: reg, Log: testLog(t),
		Pipeline: PipelineOptions{Correlator: testCorr}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	addr := s.Addr("tcp")
	if addr == nil {
		t.Fatal(<-done)
	}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peakHeap, peakSys atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			if ms.Sys > peakSys.Load() {
				peakSys.Store(ms.Sys)
			}
		}
	}()

	began := time.Now()
	var wg sync.WaitGroup
	var sentLines, sentTooLong atomic.Int64
	errs := make(chan error, conns)
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr.String())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			n, long, err := flood(bufio.NewWriterSize(conn, 64<<10), fmt.Sprintf("mx%d", c), size/conns, defaultMaxFrameBytes)
			sentLines.Add(n)
			sentTooLong.Add(long)
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("sending: %v", err)
	}
	read := func() float64 { return val(s.Metrics.LinesRead.WithLabelValues("tcp")) }
	want := float64(sentLines.Load() - sentTooLong.Load())
	deadline := time.Now().Add(10 * time.Minute)
	for read() < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(began)
	cancel() // stop: the rest is correlated and stored
	if err := <-done; err != nil {
		t.Fatalf("ingester: %v", err)
	}
	done <- nil
	close(stopSampling)
	<-sampled

	if got := read(); got != want {
		t.Errorf("%v lines read, %v sent (without the %d over the limit)", got, want, sentTooLong.Load())
	}
	if got := val(s.Metrics.NotUnderstood.WithLabelValues(ReasonFrameTooLong)); got != float64(sentTooLong.Load()) {
		t.Errorf("%v long lines counted, %d sent", got, sentTooLong.Load())
	}
	written := val(s.Metrics.EventsWritten)
	if written == 0 || float64(ss.events.Load()) != written {
		t.Errorf("%v events written by the ingester, %d taken by the store", written, ss.events.Load())
	}
	heap := peakHeap.Load()
	t.Logf("flood: %d MiB, %d lines in %s (%.0f lines/s, %.1f MiB/s), %v events stored in %d appends; peak HeapInuse %d MiB (at start %d MiB), peak Sys %d MiB",
		size>>20, sentLines.Load(), elapsed.Round(time.Millisecond), float64(sentLines.Load())/elapsed.Seconds(),
		float64(size)/(1<<20)/elapsed.Seconds(), written, ss.calls.Load(), heap>>20, base.HeapInuse>>20, peakSys.Load()>>20)
	if heap > floodHeapBound {
		t.Errorf("peak heap in use %d MiB, over the bound of %d MiB", heap>>20, floodHeapBound>>20)
	}
}
