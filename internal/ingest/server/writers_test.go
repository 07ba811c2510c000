package server

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/testutil/denselog"
)

// watchStore records the appends the writers make: which messages each
// call holds, every message's events in the order they were appended, and
// how many calls ran at once. The first calls wait (up to a bound) until
// want of them are running, so that the test sees the writers overlap
// whatever the machine's load.
type watchStore struct {
	store.Store
	want int

	mu      sync.Mutex
	running map[string]int // message trace ID: calls holding it now
	calls   int
	inFly   int
	most    int
	overlap chan struct{} // closed once most reaches want
	order   map[string][]string
	twice   []string // messages in two calls at once
}

func newWatchStore(st store.Store, want int) *watchStore {
	return &watchStore{Store: st, want: want, running: map[string]int{}, overlap: make(chan struct{}), order: map[string][]string{}}
}

func (w *watchStore) Append(ctx context.Context, evs []mailflow.Event) error {
	ids := map[string]bool{}
	w.mu.Lock()
	w.calls++
	w.inFly++
	if w.inFly > w.most {
		if w.most = w.inFly; w.most == w.want {
			close(w.overlap)
		}
	}
	for i := range evs {
		id := evs[i].MessageTraceID
		if !ids[id] {
			ids[id] = true
			if w.running[id]++; w.running[id] > 1 {
				w.twice = append(w.twice, id)
			}
		}
		w.order[id] = append(w.order[id], evs[i].ID)
	}
	w.mu.Unlock()
	select {
	case <-w.overlap:
	case <-time.After(10 * time.Second):
	}
	err := w.Store.Append(ctx, evs)
	w.mu.Lock()
	w.inFly--
	for id := range ids {
		w.running[id]--
	}
	w.mu.Unlock()
	return err
}

// With several writers a batch is split by message: every writer appends
// at the same time, a message is never in two appends at once, each
// message's events reach the store in the order one writer gives them,
// and the store ends up holding what one writer leaves.
func TestWritersSplitByMessage(t *testing.T) {
	var log bytes.Buffer
	if _, err := denselog.Write(&log, 3000, 200, true); err != nil {
		t.Fatal(err)
	}
	run := func(writers int) (*watchStore, store.Store) {
		inner := openStore(t)
		ws := newWatchStore(inner, writers)
		p, err := NewPipeline(ws, PipelineOptions{Correlator: testCorr, BatchSize: 600, Writers: writers},
			NewMetrics(prometheus.NewRegistry()), testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SubmitReader(context.Background(), "file", bytes.NewReader(log.Bytes())); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		return ws, inner
	}
	one, oneStore := run(1)
	three, threeStore := run(3)

	if three.most != 3 {
		t.Errorf("at most %d appends ran at once with 3 writers, want 3", three.most)
	}
	if one.most != 1 {
		t.Errorf("%d appends ran at once with one writer", one.most)
	}
	if len(three.twice) > 0 {
		t.Errorf("%d messages were in two appends at once, e.g. %s", len(three.twice), three.twice[0])
	}
	if three.calls <= one.calls {
		t.Errorf("3 writers made %d appends, one writer %d: the batches were not split", three.calls, one.calls)
	}
	if len(one.order) != len(three.order) {
		t.Fatalf("%d messages appended with 3 writers, %d with one", len(three.order), len(one.order))
	}
	for id, evs := range one.order {
		if got := three.order[id]; fmt.Sprint(got) != fmt.Sprint(evs) {
			t.Fatalf("message %s: events appended %v with 3 writers, %v with one", id, got, evs)
		}
	}
	if a, b := dump(t, oneStore), dump(t, threeStore); a != b {
		t.Errorf("the store holds another thing with 3 writers:\n%.2000s\nwith one:\n%.2000s", b, a)
	}
}
