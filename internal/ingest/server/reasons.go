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
)

// defaultMaxFrameBytes is the default of Options.MaxLineBytes and
// FileOptions.MaxLineBytes.
const defaultMaxFrameBytes = syslog.DefaultMaxFrameBytes
