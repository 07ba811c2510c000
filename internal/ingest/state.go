package ingest

import (
	"encoding/json"
	"errors"
	"time"
)

// State is what a Correlator knows about messages in flight: enough for a
// restarted correlator (Restore) to give the later lines of a lifecycle the
// trace ID the earlier lines got, and to emit what it was holding for a
// link. It is plain data and marshals to JSON; save it at shutdown (or
// periodically with the position in the log) and restore it before reading
// on from that position.
type State struct {
	Version    int       `json:"version"`
	Now        time.Time `json:"now"`
	ParserLast time.Time `json:"parserLast,omitzero"`
	// Sources holds each source's own state, by its registered name.
	Sources map[string]json.RawMessage `json:"sources,omitempty"`
	// Links is the index through which a source's line finds another
	// source's message (source.Links).
	Links json.RawMessage `json:"links,omitempty"`
	// WALPosition is where in its write-ahead log the reader of this
	// correlator was when the state was taken (set by the live
	// ingester, see package wal): reading on from there after Restore
	// repeats nothing and misses nothing.
	WALPosition uint64 `json:"walPosition,omitempty"`
}

// stateVersion 2: the sources' states by name. Version 1 was written
// before sources: its fields beside the engine's were the Postfix
// source's, and it is read as such (UnmarshalJSON).
const (
	stateVersion  = 2
	legacySource  = "postfix"
	legacyVersion = 1
)

// UnmarshalJSON reads a state of this version, or of version 1.
func (s *State) UnmarshalJSON(b []byte) error {
	type plain State
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Version == legacyVersion {
		p.Version = stateVersion
		p.Sources = map[string]json.RawMessage{legacySource: append(json.RawMessage(nil), b...)}
	}
	*s = State(p)
	return nil
}

// State returns a snapshot of the messages in flight (call it between
// lines, after the emitted events have been stored).
func (c *Correlator) State() (State, error) {
	st := State{Version: stateVersion, Now: c.env.Now, ParserLast: c.parser.Last(), Sources: map[string]json.RawMessage{}}
	for i, s := range c.sources {
		b, err := s.State()
		if err != nil {
			return State{}, errors.New("ingest: state of source " + c.names[i] + ": " + err.Error())
		}
		st.Sources[c.names[i]] = b
	}
	b, err := json.Marshal(c.env.Links)
	if err != nil {
		return State{}, errors.New("ingest: state of the links between sources: " + err.Error())
	}
	st.Links = b
	return st, nil
}

// Restore loads a snapshot into a correlator that has read nothing yet.
func (c *Correlator) Restore(st State) error {
	if st.Version != stateVersion {
		return errors.New("ingest: unknown state version")
	}
	if c.env.Stats.Lines != 0 {
		return errors.New("ingest: Restore on a correlator that has read lines")
	}
	for name := range st.Sources {
		if !c.has(name) {
			return errors.New("ingest: state of an unknown source " + name)
		}
	}
	c.setNow(st.Now)
	c.setLastSweep(st.Now)
	if !st.ParserLast.IsZero() {
		c.parser.Resume(st.ParserLast)
	}
	if len(st.Links) > 0 {
		if err := json.Unmarshal(st.Links, c.env.Links); err != nil {
			return errors.New("ingest: state of the links between sources: " + err.Error())
		}
	}
	for i, s := range c.sources {
		if b, ok := st.Sources[c.names[i]]; ok {
			if err := s.Restore(b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Correlator) has(name string) bool {
	for _, n := range c.names {
		if n == name {
			return true
		}
	}
	return false
}
