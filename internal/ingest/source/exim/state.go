package exim

import (
	"encoding/json"
	"errors"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// State is what the source knows of messages in flight, for a restarted
// source (Restore): the messages as they stand (their aliases' held
// events included) and the records of evicted ones. Trace IDs need none
// of it (a digest of host and id).
type State struct {
	Messages []*message     `json:"messages,omitempty"`
	Evicted  []EvictedState `json:"evicted,omitempty"`
}

// EvictedState is the record of an evicted message.
type EvictedState struct {
	Key     uint64            `json:"key"`
	Flags   uint8             `json:"flags,omitempty"`
	Aliases map[string]string `json:"aliases,omitempty"`
}

// State returns a snapshot of the messages in flight as JSON.
func (c *Source) State() (json.RawMessage, error) {
	st := State{Messages: c.sorted(func(*message) bool { return true })}
	for k, r := range c.evicted.All() {
		st.Evicted = append(st.Evicted, EvictedState{Key: k, Flags: r.flags, Aliases: r.aliases})
	}
	return json.Marshal(st)
}

// Restore loads a snapshot (State's JSON) into a source that has read
// nothing yet.
func (c *Source) Restore(b json.RawMessage) error {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return errors.New("ingest: exim state: " + err.Error())
	}
	if len(c.msgs) != 0 {
		return errors.New("ingest: Restore on an exim source that has read lines")
	}
	for _, m := range st.Messages {
		if m == nil || m.ID == "" {
			return errors.New("ingest: exim state: a message without an id")
		}
		if m.Status == nil {
			m.Status = map[string]mailflow.Status{}
		}
		c.msgs[m.Host+"\x00"+m.ID] = m
		c.inFlight.Touch(&m.lru, m)
	}
	for _, e := range st.Evicted {
		if c.cfg.MaxEvicted <= 0 {
			break
		}
		c.evicted.Put(e.Key, evicted{flags: e.Flags, aliases: e.Aliases})
	}
	return nil
}
