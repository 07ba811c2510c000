package syslog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Drop says why Decoder dropped a frame; its text is the reason counted.
type Drop string

// Why a frame is dropped.
const (
	DropTooLong   Drop = "too long"  // over the maximum, skipped to its end
	DropHalfFrame Drop = "half line" // the stream ended in the middle of a frame
)

// DefaultMaxFrameBytes is the longest frame a Decoder made with max <= 0
// reads.
const DefaultMaxFrameBytes = 64 << 10

const maxOctetCountDigits = 9

// Decoder reads syslog frames from a stream as RFC 6587 describes them, the
// framing being detected frame by frame: an octet-counted frame ("LEN SP
// MSG", what RFC 5425 TLS senders and rsyslog's
// TCP_Framing="octet-counted" send) starts with a non-zero digit followed by
// digits and a space; anything else is a frame ended by LF (the traditional
// "non-transparent" framing; a CR before the LF and NULs between frames are
// dropped). Mixing both on one connection works. A frame longer than the
// maximum is skipped to its end and reported, never buffered whole, and the
// next frame is read: one bad frame never ends a stream.
type Decoder struct {
	br  *bufio.Reader
	max int
	buf []byte
}

// NewDecoder reads frames of at most max bytes (<= 0:
// DefaultMaxFrameBytes) from r.
func NewDecoder(r io.Reader, max int) *Decoder {
	if max <= 0 {
		max = DefaultMaxFrameBytes
	}
	return &Decoder{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Buffered reports whether a next frame may be read without waiting.
func (d *Decoder) Buffered() bool { return d.br.Buffered() > 0 }

// Next returns the next frame, valid until the following call; or, for a
// frame it dropped, a nil frame and why (DropTooLong, DropHalfFrame). err
// is io.EOF at a clean end of the stream, or the reader's error.
func (d *Decoder) Next() (frame []byte, drop Drop, err error) {
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

func (d *Decoder) counted(n int) ([]byte, Drop, error) {
	if n > d.max {
		k, err := d.br.Discard(n)
		if k < n {
			return nil, DropHalfFrame, eof(err)
		}
		return nil, DropTooLong, nil
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	if k, err := io.ReadFull(d.br, d.buf); err != nil {
		if k == 0 && errors.Is(err, io.EOF) {
			return nil, DropHalfFrame, io.EOF
		}
		return nil, DropHalfFrame, eof(err)
	}
	return trimFrame(d.buf), "", nil
}

func eof(err error) error {
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

func (d *Decoder) line() ([]byte, Drop, error) {
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
				return nil, DropHalfFrame, err
			}
			return nil, "", err
		}
		break
	}
	if tooLong {
		return nil, DropTooLong, nil
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
