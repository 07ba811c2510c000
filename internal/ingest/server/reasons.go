package server

import "github.com/mailtrace/mailtrace/internal/ingest/syslog"

// Reasons a frame or a request is dropped before the correlator sees it
// (the correlator's own reasons are in package ingest).
const (
	ReasonFrameTooLong  = string(syslog.DropTooLong)
	ReasonHalfLine      = string(syslog.DropHalfFrame) // the stream ended in the middle of a frame
	ReasonBadJSON       = "bad json"
	ReasonRequestTooBig = "request too large"
	ReasonUnauthorized  = "unauthorized"         // no or a wrong token, no or an unverified client certificate
	ReasonTLSHandshake  = "tls handshake failed" // a plain-text client on a TLS listener, among others
	ReasonTooManyConns  = "too many connections"
	ReasonEmptyRecord   = "record without a message"
	ReasonWALFull       = "write-ahead log refused" // a UDP datagram the log could not take (full, a failing disk)
)

// Reasons of the listeners' limits.
const (
	ReasonBadFrame          = string(syslog.DropBadFrame) // not a counted frame on an octet-counted connection: skipped to its LF
	ReasonTooManyRecords    = "too many records"          // more than --max-records-per-request in one request
	ReasonTooDeep           = "json too deep"             // JSON nested deeper than maxJSONDepth
	ReasonTooManyHandshakes = "too many handshakes"       // --max-handshakes TLS handshakes in flight
	ReasonTooManyFromIP     = "too many connections from one address"
	ReasonBusy              = "too many request bytes" // bodies in memory at their bound: 503, retried
	ReasonBadGzip           = "bad gzip"
)

// Why the ingester ends a connection or a request itself
// (mailtrace_ingest_connections_cut_total).
const (
	ReasonIdle      = "idle timeout" // a syslog connection silent for --idle-timeout
	ReasonSlowFrame = "slow frame"   // a syslog frame not complete within --frame-timeout
	ReasonSlowBody  = "slow body"    // an HTTP body not read within --http-body-timeout
)

// defaultMaxFrameBytes is the default of Options.MaxLineBytes and
// FileOptions.MaxLineBytes.
const defaultMaxFrameBytes = syslog.DefaultMaxFrameBytes
