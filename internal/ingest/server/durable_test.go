package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// syncStore is a store whose appends reach the disk only at Sync (as SQLite
// with synchronous=NORMAL): it records what was appended since the last
// Sync, and whether the state file was written while some were not synced.
type syncStore struct {
	store.Store
	stateFile string
	fail      error

	mu       sync.Mutex
	unsynced int
	syncs    int
	early    int // state files written over unsynced appends
	lastMod  time.Time
}

func (s *syncStore) Append(ctx context.Context, evs []mailflow.Event) error {
	s.check()
	if err := s.Store.Append(ctx, evs); err != nil {
		return err
	}
	s.mu.Lock()
	s.unsynced += len(evs)
	s.mu.Unlock()
	return nil
}

func (s *syncStore) Sync(context.Context) error {
	s.check()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.syncs++
	s.unsynced = 0
	return nil
}

// check notes a state file written since the last call while appends were
// not synced.
func (s *syncStore) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.stateFile)
	if err != nil || !fi.ModTime().After(s.lastMod) {
		return
	}
	s.lastMod = fi.ModTime()
	if s.unsynced > 0 {
		s.early++
	}
}

// The ingester deletes its write-ahead log behind each state file it
// saves: a store that acknowledges appends before they are on disk is
// synced first, and a state file is not saved when the sync fails.
func TestCheckpointSyncsTheStoreFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail error
	}{{"synced", nil}, {"sync fails", errors.New("disk on fire")}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state.json")
			st := &syncStore{Store: openStore(t), stateFile: state, fail: tc.fail}
			p, err := NewPipeline(st, PipelineOptions{Correlator: crashCorr, StateFile: state, WALDir: filepath.Join(dir, "wal"),
				StateInterval: 20 * time.Millisecond, BatchWait: 5 * time.Millisecond}, nil, logr.Discard())
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
			for i := range 50 {
				m := crashMessage(t0, i)
				var msgs []syslog.Message
				for _, l := range append(m[0], m[1]...) {
					msgs = append(msgs, syslog.Message{Line: l})
				}
				if err := p.Submit(context.Background(), "test", msgs); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			st.check()
			_, statErr := os.Stat(state)
			switch {
			case tc.fail == nil && (st.syncs == 0 || statErr != nil):
				t.Errorf("%d syncs, state file: %v; want synced and saved", st.syncs, statErr)
			case tc.fail != nil && statErr == nil:
				t.Errorf("a state file saved although the store could not sync")
			}
			if st.early > 0 {
				t.Errorf("%d state files saved over appends not synced", st.early)
			}
		})
	}
}
