package server

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// HTTP request bodies: read whole before they are parsed (so a body over a
// limit is refused with nothing of it stored), under a byte cap that also
// holds after gzip, a read deadline (BodyTimeout), and a bound on the bytes
// of all bodies in memory together (MaxConcurrentRequests x
// MaxRequestBytes). A parsing slot (one of MaxConcurrentRequests) is taken
// only once the body is read: a slow sender holds the few bytes it sent,
// never a slot.

// errBusy: the bodies in memory are at their bound.
var errBusy = errors.New("busy")

// bodyError is why a body could not be read: the status, the reason counted
// and the message for the sender.
type bodyError struct {
	status int
	reason string
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// reserve accounts for n more bytes of bodies in memory; false when they
// would go over the bound.
func (s *Server) reserve(n int64) bool {
	s.bodyMu.Lock()
	defer s.bodyMu.Unlock()
	if s.bodies+n > int64(s.o.MaxConcurrentRequests)*s.o.MaxRequestBytes {
		return false
	}
	s.bodies += n
	return true
}

func (s *Server) unreserve(n int64) {
	s.bodyMu.Lock()
	s.bodies -= n
	s.bodyMu.Unlock()
}

// readBody reads r's body (decompressed). release gives its bytes back to
// the bound; call it when the body and what was parsed of it are no longer
// needed, also after an error.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (data []byte, release func(), err error) {
	var held int64
	release = func() { s.unreserve(held); held = 0 }
	rc := http.NewResponseController(w)
	if s.o.BodyTimeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(s.o.BodyTimeout))
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	limit := s.o.MaxRequestBytes
	tooBig := &bodyError{http.StatusRequestEntityTooLarge, ReasonRequestTooBig,
		fmt.Sprintf("request body over the limit of %d bytes (--max-request-bytes): nothing of it was stored; send smaller batches", limit)}
	if r.ContentLength > limit {
		return nil, release, tooBig
	}
	body := io.Reader(http.MaxBytesReader(w, r.Body, limit))
	other := &bodyError{http.StatusBadRequest, ReasonHalfLine, "reading the body: "}
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		other = &bodyError{http.StatusBadRequest, ReasonBadGzip, "bad gzip body: "}
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, release, readError(err, tooBig, other)
		}
		defer zr.Close()
		// the limit applies to the decompressed body too (a gzip bomb)
		body = io.LimitReader(zr, limit+1)
	}
	const step = 32 << 10
	for {
		if len(data) == cap(data) {
			grow := int64(max(step, cap(data))) // doubling: the garbage of growing is at most the body
			if cap(data) >= 1<<20 && r.ContentLength > int64(cap(data)) {
				// a body that has sent a MiB is no trickle: room for the
				// rest it announced, at once
				grow = r.ContentLength - int64(cap(data))
			}
			grow = min(grow, limit+1-int64(cap(data))) // never more than the limit
			if !s.reserve(grow) {
				return nil, release, &bodyError{http.StatusServiceUnavailable, ReasonBusy,
					"too many request bytes in memory; retry later"}
			}
			held += grow
			data = slices.Grow(data, int(grow))
		}
		n, rerr := body.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if int64(len(data)) > limit {
			return nil, release, tooBig
		}
		if rerr == io.EOF {
			return data, release, nil
		}
		if rerr != nil {
			return nil, release, readError(rerr, tooBig, other)
		}
	}
}

// readError tells a body over the limit and a body too slow from other
// read errors (other, its message followed by the error's).
func readError(err error, tooBig, other *bodyError) *bodyError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooBig
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &bodyError{http.StatusRequestTimeout, ReasonSlowBody, "the body was not sent within --http-body-timeout; nothing of it was stored"}
	}
	return &bodyError{other.status, other.reason, other.msg + err.Error()}
}
