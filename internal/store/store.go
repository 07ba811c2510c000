// Package store is the trace store port: where message events are appended
// and where traces run, in the vocabulary of package mailflow (its data model
// and the conventions every adapter follows are described there). Adapters
// live in sub-packages (sqlite, postgres) and must all pass the shared
// conformance suite in package storetest.
//
// The port is split by what each user needs: the ingest appends (Appender),
// controllers and CLIs read (Reader, and Streamer for reports), retention
// prunes (Pruner); Store is all of them, what an adapter implements.
package store

import (
	"context"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Appender is what the ingest needs: appending events.
type Appender interface {
	// Append stores events. It is idempotent per event ID and atomic per call.
	Append(ctx context.Context, events []mailflow.Event) error
}

// Reader is what traces need: rows, counts and a message's events.
type Reader interface {
	// Trace returns up to limit rows matching q after cursor, newest received
	// first (ties broken by message trace ID then recipient, both ascending).
	Trace(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, limit int) (mailflow.Page, error)
	// Count counts the rows matching q per status.
	Count(ctx context.Context, q mailflow.Query) (mailflow.Counts, error)
	// Events returns one message's events for one recipient in time order:
	// the message-level events (empty recipient) and that recipient's own.
	Events(ctx context.Context, messageTraceID, recipient string) ([]mailflow.Event, error)
	// ScopedEvents is Events for a caller restricted to scope (see
	// mailflow.Query.Scope): it returns nothing unless the (message,
	// recipient) row is visible in scope (for an empty recipient: any row of
	// the message). A nil scope is unrestricted.
	ScopedEvents(ctx context.Context, scope []string, messageTraceID, recipient string) ([]mailflow.Event, error)
}

// Pruner is what retention needs.
type Pruner interface {
	// Prune removes everything received before cutoff.
	Prune(ctx context.Context, cutoff time.Time) error
}

// Streamer is implemented by stores that can send a whole trace from one
// query (a server-side stream) instead of one query per page: what a report
// over millions of rows uses. Stream calls fn for each row matching q after
// cursor, in Trace's order, and returns fn's first error (fn must not keep
// the *Row). The rows are the ones paging through Trace from cursor gives;
// memory stays bounded whatever the size of the result, because rows are
// read from the server as fn consumes them.
type Streamer interface {
	Stream(ctx context.Context, q mailflow.Query, cursor mailflow.Cursor, fn func(*mailflow.Row) error) error
}

// ConcurrentAppender is implemented by stores whose Append may run in
// several calls at once, for events of different messages, and gains from
// it (PostgreSQL: each call is a backend of its own, on a core of its own).
// AppendConcurrency is how many concurrent calls the ingester makes by
// default. A store without it (SQLite: one writer at a time) gets one.
type ConcurrentAppender interface {
	AppendConcurrency() int
}

// Preparer is implemented by stores whose Append does work that needs no
// database (checking, encoding and grouping the events) and that one
// writer at a time would otherwise do between its statements (SQLite):
// the ingester prepares a batch before it queues it, while the writer
// appends the one before. Append(ctx, evs) is AppendPrepared(ctx,
// Prepare(evs)). A Prepared batch holds none of the slice it was made
// from, and AppendPrepared does not change it, so that a failed append
// can be retried with it.
type Preparer interface {
	Prepare(events []mailflow.Event) (Prepared, error)
	AppendPrepared(ctx context.Context, p Prepared) error
}

// Prepared is a batch of events prepared by a Preparer, for its
// AppendPrepared only.
type Prepared interface {
	// Len is how many events it holds.
	Len() int
}

// ReplicaLagger is implemented by stores that read from a replica of the
// database they write (a PostgreSQL hot standby): ReplicaLag is how far the
// replica is behind (0 when it has everything, or reads do not go to a
// replica), MaxReplicaLag the most the operator accepts before a trace
// answered from the replica says so in its status.
type ReplicaLagger interface {
	ReplicaLag(ctx context.Context) (time.Duration, error)
	MaxReplicaLag() time.Duration
}

// StatusTotaler is implemented by stores that keep rollups of their rows
// (PostgreSQL): how many rows were received in [start, end) per status and
// direction, whole hours only, without reading the rows. It feeds metrics,
// so it never says anything of an address.
type StatusTotaler interface {
	StatusTotals(ctx context.Context, start, end time.Time) ([]StatusTotal, error)
}

// StatusTotal is the number of rows of one status and direction.
type StatusTotal struct {
	Status    mailflow.Status
	Direction mailflow.Direction
	Rows      int64
}

// Store is the whole port, what an adapter implements and what opening a
// store URL returns.
type Store interface {
	Appender
	Reader
	Pruner
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}
