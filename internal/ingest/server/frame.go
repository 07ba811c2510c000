package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// Reasons a frame or a request is dropped before the correlator sees it
// (the correlator's own reasons are in package ingest).
const (
	ReasonFrameTooLong   = "too long"
	ReasonHalfLine       = "half line" // the stream ended in the middle of a frame
	ReasonBadJSON        = "bad json"
	ReasonRequestTooBig  = "request too large"
	ReasonUnauthorized   = "unauthorized"         // no or a wrong token, no or an unverified client certificate
	ReasonTLSHandshake   = "tls handshake failed" // a plain-text client on a TLS listener, among others
	ReasonTooManyConns   = "too many connections"
	ReasonEmptyRecord    = "record without a message"
	maxOctetCountDigits  = 9
	defaultMaxFrameBytes = 64 << 10
)

// Decoder reads syslog frames from a stream as RFC 6587 describes them, the
// framing being detected frame by frame: an octet-counted frame ("LEN SP
// MSG", what RFC 5425 TLS senders and rsyslog's
// TCP_Framing="octet-counted" send) starts with a non-zero digit followed by
// digits and a space; anything else is a frame ended by LF (the traditional
// "non-transparent" framing; a CR before the LF and NULs between frames are
// dropped). Mixing both on one connection works. A frame longer than the
// maximum is skipped to its end and reported, never buffered whole.
type Decoder struct {
	br  *bufio.Reader
	max int
	buf []byte
}

// NewDecoder reads frames of at most max bytes (<= 0: 64 KiB) from r.
func NewDecoder(r io.Reader, max int) *Decoder {
	if max <= 0 {
		max = defaultMaxFrameBytes
	}
	return &Decoder{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Buffered reports whether a next frame may be read without waiting.
func (d *Decoder) Buffered() bool { return d.br.Buffered() > 0 }

// Next returns the next frame, valid until the following call; or, for a
// frame it dropped, a nil frame and the reason (ReasonFrameTooLong,
// ReasonHalfLine). err is io.EOF at a clean end of the stream, or the
// reader's error.
func (d *Decoder) Next() (frame []byte, reason string, err error) {
	// skip the separators some senders put between frames
	for {
		b, err := d.br.ReadByte()
		if err != nil {
			return nil, "", err
		}
		if b != '\n' && b != '\r' && b != 0 {
			_ = d.br.UnreadByte()
			break
		}
	}
	if n, ok := d.octetCount(); ok {
		return d.counted(n)
	}
	return d.line()
}

// octetCount reads "LEN SP" when the stream is at an octet-counted frame.
func (d *Decoder) octetCount() (int, bool) {
	p, _ := d.br.Peek(maxOctetCountDigits + 1)
	if len(p) < 2 || p[0] < '1' || p[0] > '9' {
		return 0, false
	}
	n := 0
	for i, c := range p {
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int(c-'0')
		case c == ' ' && i > 0:
			_, _ = d.br.Discard(i + 1)
			return n, true
		default:
			return 0, false
		}
	}
	return 0, false
}

func (d *Decoder) counted(n int) ([]byte, string, error) {
	if n > d.max {
		k, err := d.br.Discard(n)
		if k < n {
			return nil, ReasonHalfLine, eof(err)
		}
		return nil, ReasonFrameTooLong, nil
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	if k, err := io.ReadFull(d.br, d.buf); err != nil {
		if k == 0 && errors.Is(err, io.EOF) {
			return nil, ReasonHalfLine, io.EOF
		}
		return nil, ReasonHalfLine, eof(err)
	}
	return trimFrame(d.buf), "", nil
}

func eof(err error) error {
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

func (d *Decoder) line() ([]byte, string, error) {
	d.buf = d.buf[:0]
	tooLong := false
	for {
		frag, err := d.br.ReadSlice('\n')
		if !tooLong {
			if len(d.buf)+len(frag) > d.max+1 {
				tooLong, d.buf = true, d.buf[:0]
			} else {
				d.buf = append(d.buf, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			// the stream ended before the LF: the frame may be cut anywhere
			if tooLong || len(d.buf) > 0 {
				return nil, ReasonHalfLine, err
			}
			return nil, "", err
		}
		break
	}
	if tooLong {
		return nil, ReasonFrameTooLong, nil
	}
	return trimFrame(d.buf), "", nil
}

// trimFrame drops the trailing newline and CR; a newline inside an
// octet-counted frame becomes a space (one frame is one log line).
func trimFrame(b []byte) []byte {
	b = bytes.TrimRight(b, "\r\n\x00")
	if bytes.IndexByte(b, '\n') >= 0 {
		b = bytes.ReplaceAll(b, []byte{'\n'}, []byte{' '})
	}
	return b
}

// Normalize turns one syslog message as it travels on the wire into the
// line form package ingest reads (the form of a log file):
//
//   - a "<PRI>" prefix is removed;
//   - an RFC 5424 message ("<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG")
//     becomes "TIMESTAMP HOST APP[PROCID]: MSG" (structured data and the
//     MSGID are dropped, a BOM before MSG too);
//   - anything else (RFC 3164 "<PRI>Mmm dd hh:mm:ss host tag: msg", or
//     rsyslog's RFC 3339 forward format) is left as it is after the PRI.
//
// It never fails: what it cannot read is returned unchanged, and the
// correlator counts it as not syslog.
func Normalize(s string) string {
	rest, ok := stripPRI(s)
	if !ok {
		return s
	}
	if strings.HasPrefix(rest, "1 ") {
		if l, ok := rfc5424(rest[2:]); ok {
			return l
		}
	}
	return rest
}

func stripPRI(s string) (string, bool) {
	if len(s) < 3 || s[0] != '<' {
		return s, false
	}
	for i := 1; i < len(s) && i <= 4; i++ {
		c := s[i]
		if c == '>' && i > 1 {
			return s[i+1:], true
		}
		if c < '0' || c > '9' {
			return s, false
		}
	}
	return s, false
}

// rfc5424 reads "TIMESTAMP HOST APP PROCID MSGID SD [MSG]".
func rfc5424(s string) (string, bool) {
	var f [5]string
	for i := range f {
		j := strings.IndexByte(s, ' ')
		if j <= 0 {
			return "", false
		}
		f[i], s = s[:j], s[j+1:]
	}
	ts, host, app, pid := f[0], f[1], f[2], f[3]
	if ts == "-" || host == "-" {
		return "", false
	}
	// structured data: "-" or one or more [id k="v"...] elements
	switch {
	case strings.HasPrefix(s, "-"):
		s = s[1:]
	case strings.HasPrefix(s, "["):
		i, inQuote := 0, false
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && inQuote {
				i++
				continue
			}
			if c == '"' {
				inQuote = !inQuote
			}
			if c == ']' && !inQuote && (i+1 == len(s) || s[i+1] != '[') {
				break
			}
		}
		if i >= len(s) {
			return "", false
		}
		s = s[i+1:]
	default:
		return "", false
	}
	s = strings.TrimPrefix(s, " ")
	s = strings.TrimPrefix(s, "\uFEFF")
	var b strings.Builder
	b.Grow(len(ts) + len(host) + len(app) + len(pid) + len(s) + 8)
	b.WriteString(ts)
	b.WriteByte(' ')
	b.WriteString(host)
	b.WriteByte(' ')
	if app == "-" {
		app = "unknown"
	}
	b.WriteString(app)
	if pid != "-" {
		b.WriteByte('[')
		b.WriteString(pid)
		b.WriteByte(']')
	}
	b.WriteString(": ")
	b.WriteString(s)
	return b.String(), true
}
