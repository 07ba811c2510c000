package messagetrace

import (
	"context"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mailtrace/mailtrace/internal/controllerkit"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/report"
	"github.com/mailtrace/mailtrace/internal/store"
)

// DefaultWorkers is the size of the export worker pool.
const DefaultWorkers = 2

// job is one report export: it runs on a worker of the pool, off the
// reconcile path. The reconciler reads its progress and outcome.
type job struct {
	uid  types.UID
	obj  types.NamespacedName
	key  string // relative to the object store's prefix
	os   objectstore.Store
	st   store.Reader
	q    mailflow.Query
	opts report.Options
	keep int // status rows captured from the first page

	rows   atomic.Int64 // progress
	ctx    context.Context
	cancel context.CancelFunc

	// Set when done, read after done is closed.
	done   chan struct{}
	res    report.Result
	info   objectstore.UploadInfo
	counts mailflow.Counts
	first  []mailflow.Row
	err    error
}

// jobState is a snapshot of a job for the reconciler.
type jobState struct {
	running  bool // queued or on a worker
	rows     int64
	finished bool
	res      report.Result
	info     objectstore.UploadInfo
	counts   mailflow.Counts
	first    []mailflow.Row
	err      error
}

// Pool runs exports on a bounded number of workers inside the manager (a
// Runnable that needs leader election: it runs on the leader only). Jobs are
// known by the MessageTrace's UID; a finished job stays until the reconciler
// has written its outcome and calls Forget. When the manager stops, running
// exports are cancelled (their multipart uploads aborted): the next leader
// sees a running trace without a job and retries with the same key.
type Pool struct {
	Workers int
	// Notify is called when a job finishes, to reconcile its MessageTrace.
	Notify func(types.NamespacedName)

	mu      sync.Mutex
	jobs    map[types.UID]*job
	queue   chan *job
	ctx     context.Context
	started chan struct{}
	once    sync.Once
}

func (p *Pool) init() {
	p.once.Do(func() {
		p.jobs = map[types.UID]*job{}
		p.queue = make(chan *job, 1<<16)
		p.started = make(chan struct{})
	})
}

// NeedLeaderElection: exports run on the leader only.
func (p *Pool) NeedLeaderElection() bool { return true }

// Start runs the workers until ctx ends, then cancels every job.
func (p *Pool) Start(ctx context.Context) error {
	p.init()
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	close(p.started)
	n := p.Workers
	controllerkit.Default(&n, DefaultWorkers)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.queue:
					p.run(ctx, j)
				}
			}
		}()
	}
	<-ctx.Done()
	p.mu.Lock()
	for _, j := range p.jobs {
		j.cancel()
	}
	p.mu.Unlock()
	wg.Wait()
	return nil
}

// Submit queues a job; false when the pool is not running (not the leader yet).
func (p *Pool) Submit(j *job) bool {
	p.init()
	select {
	case <-p.started:
	default:
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	if _, ok := p.jobs[j.uid]; ok {
		return true
	}
	j.ctx, j.cancel = context.WithCancel(p.ctx)
	j.done = make(chan struct{})
	p.jobs[j.uid] = j
	select {
	case p.queue <- j:
	default:
		delete(p.jobs, j.uid)
		j.cancel()
		return false
	}
	return true
}

// Lookup returns the state of the job of uid, and whether there is one.
func (p *Pool) Lookup(uid types.UID) (jobState, bool) {
	p.init()
	p.mu.Lock()
	j, ok := p.jobs[uid]
	p.mu.Unlock()
	if !ok {
		return jobState{}, false
	}
	s := jobState{rows: j.rows.Load()}
	select {
	case <-j.done:
		s.finished, s.res, s.info, s.counts, s.first, s.err = true, j.res, j.info, j.counts, j.first, j.err
	default:
		s.running = true
	}
	return s, true
}

// Forget drops a finished job (after its outcome is in status), or cancels
// and drops a running one (the trace is being deleted).
func (p *Pool) Forget(uid types.UID) {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	if j, ok := p.jobs[uid]; ok {
		j.cancel()
		delete(p.jobs, uid)
	}
}

func (p *Pool) run(ctx context.Context, j *job) {
	defer j.cancel()
	if j.ctx.Err() == nil {
		j.execute(j.ctx)
	} else {
		j.err = j.ctx.Err()
	}
	close(j.done)
	if ctx.Err() == nil && p.Notify != nil {
		p.Notify(j.obj)
	}
}

// execute aborts what an earlier attempt may have left under the key, then
// streams the report into the object store.
func (j *job) execute(ctx context.Context) {
	if err := j.os.AbortIncomplete(ctx, j.key); err != nil {
		j.err = err
		return
	}
	st, tap := tapOf(j.st, j.keep)
	j.res, j.info, j.err = report.Upload(ctx, j.os, j.key, st, j.q, j.opts, func(n int64) { j.rows.Store(n) })
	j.counts, j.first = tap.counts, tap.first
}

// tapStore counts the rows of the trace by status and keeps the first ones,
// as the report reads them: a long-range trace gets its counts and its first
// rows in status without a second pass over the store.
type tapStore struct {
	store.Reader
	keep   int
	counts mailflow.Counts
	first  []mailflow.Row
}

func (t *tapStore) Trace(ctx context.Context, q mailflow.Query, c mailflow.Cursor, limit int) (mailflow.Page, error) {
	p, err := t.Reader.Trace(ctx, q, c, limit)
	if err != nil {
		return p, err
	}
	for i := range p.Rows {
		t.see(&p.Rows[i])
	}
	return p, nil
}

func (t *tapStore) see(r *mailflow.Row) {
	if t.counts.ByStatus == nil {
		t.counts.ByStatus = map[mailflow.Status]int64{}
	}
	t.counts.Total++
	t.counts.ByStatus[r.Status]++
	if len(t.first) < t.keep {
		t.first = append(t.first, *r)
	}
}

// tapOf returns the store a report reads (st with a tap on it) and the tap.
// Over a store.Streamer it is a Streamer too: the tap must not hide the
// store's one-query export.
func tapOf(st store.Reader, keep int) (store.Reader, *tapStore) {
	tap := &tapStore{Reader: st, keep: keep}
	if sm, ok := st.(store.Streamer); ok {
		return &tapStreamer{tapStore: tap, sm: sm}, tap
	}
	return tap, tap
}

// tapStreamer is tapStore over a store.Streamer, which it stays.
type tapStreamer struct {
	*tapStore
	sm store.Streamer
}

func (t *tapStreamer) Stream(ctx context.Context, q mailflow.Query, c mailflow.Cursor, fn func(*mailflow.Row) error) error {
	return t.sm.Stream(ctx, q, c, func(r *mailflow.Row) error {
		t.see(r)
		return fn(r)
	})
}
