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
	// DropBadFrame: on an octet-counted stream, bytes that are not "LEN SP"
	// and a syslog header; skipped to the next LF, where the next frame is
	// looked for.
	DropBadFrame Drop = "bad frame"
)

// DefaultMaxFrameBytes is the longest frame a Decoder made with max <= 0
// reads.
const DefaultMaxFrameBytes = 64 << 10

const maxOctetCountDigits = 9

// sampleBytes is how much of a dropped frame Decoder keeps for the log.
const sampleBytes = 64

// framing is how a stream delimits its frames, fixed by its first frame.
type framing uint8

const (
	framingUnknown framing = iota
	framingOctets          // "LEN SP MSG" (RFC 6587 octet counting, RFC 5425)
	framingLines           // "MSG LF" (RFC 6587 non-transparent framing)
)

// Decoder reads syslog frames from a stream as RFC 6587 describes them. The
// framing is chosen once per stream, by its first frame, as a sender uses
// one: octet counting ("LEN SP MSG", what RFC 5425 TLS senders and
// rsyslog's TCP_Framing="octet-counted" send) when the stream starts with a
// count (a non-zero digit, at most nine digits, a space) that is followed by
// the start of a syslog header (a "<PRI>", an RFC 3164 "Mmm " or an RFC 3339
// "YYYY-MM-DD"); newline framing (a frame ends at LF; a CR before the LF and
// NULs between frames are dropped) otherwise. So a newline-ended line that
// starts with digits and a space ("4096 bytes of junk", "65000 y") is a
// line, never a count that swallows the lines after it.
//
// On an octet-counted stream every frame must be a count and a header: what
// is not is dropped up to the next LF (DropBadFrame), where the next frame
// is looked for. A frame longer than the maximum is skipped to its end (its
// count, on an octet-counted stream, or its LF) and reported, never
// buffered whole, and the next frame is read: one bad frame never ends a
// stream. A dropped frame's size and first bytes are DroppedBytes and
// DroppedSample.
type Decoder struct {
	br      *bufio.Reader
	max     int
	buf     []byte
	mode    framing
	dropped int64
	sample  []byte
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

// OctetCounted reports whether the stream's first frame made it an
// octet-counted stream.
func (d *Decoder) OctetCounted() bool { return d.mode == framingOctets }

// DroppedBytes is the size of the frame the last Next dropped (what was
// read of it when the stream ended in it).
func (d *Decoder) DroppedBytes() int64 { return d.dropped }

// DroppedSample is the start of the frame the last Next dropped (at most 64
// bytes), valid until the following call.
func (d *Decoder) DroppedSample() []byte { return d.sample }

// Next returns the next frame, valid until the following call; or, for a
// frame it dropped, a nil frame and why (DropTooLong, DropHalfFrame,
// DropBadFrame). err is io.EOF at a clean end of the stream, or the
// reader's error.
func (d *Decoder) Next() (frame []byte, drop Drop, err error) {
	d.dropped, d.sample = 0, d.sample[:0]
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
	switch d.mode {
	case framingLines:
		return d.line()
	case framingOctets:
		if n, ok := d.octetCount(); ok {
			return d.counted(n)
		}
		return d.resync()
	default:
		if n, ok := d.octetCount(); ok {
			d.mode = framingOctets
			return d.counted(n)
		}
		d.mode = framingLines
		return d.line()
	}
}

// octetCount reads "LEN SP" when the stream is at an octet-counted frame: a
// count followed by the start of a syslog header. It reads no further than
// it must to decide: a short line whose LF has arrived is never held up
// waiting for more bytes.
func (d *Decoder) octetCount() (int, bool) {
	want := max(1, d.br.Buffered())
	for {
		p, err := d.br.Peek(want)
		n, skip, res := scanCount(p)
		switch res {
		case countYes:
			_, _ = d.br.Discard(skip)
			return n, true
		case countNo:
			return 0, false
		}
		if err != nil || len(p) < want {
			return 0, false // the stream ended (or failed) first: not a frame
		}
		want = len(p) + 1
	}
}

type countResult uint8

const (
	countMore countResult = iota // p ends before it can be told
	countYes
	countNo
)

// scanCount says whether p starts with "LEN SP" and a syslog header, and
// if so the count and the length of "LEN SP". It never needs more than 21
// bytes to decide.
func scanCount(p []byte) (n, skip int, res countResult) {
	if len(p) == 0 {
		return 0, 0, countMore
	}
	if p[0] < '1' || p[0] > '9' {
		return 0, 0, countNo
	}
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		if i == maxOctetCountDigits {
			return 0, 0, countNo
		}
		n = n*10 + int(p[i]-'0')
	}
	if i == len(p) {
		return 0, 0, countMore
	}
	if p[i] != ' ' {
		return 0, 0, countNo
	}
	skip = i + 1
	h, ok := headerStart(p[skip:])
	switch {
	case h == 0:
		return 0, 0, countMore
	case !ok || n < h:
		return 0, 0, countNo
	}
	return n, skip, countYes
}

// headerStart says whether p starts a syslog message: "<PRI>", an RFC 3164
// timestamp's "Mmm " or an RFC 3339 timestamp's "YYYY-MM-DD". h is how many
// bytes it looked at to say so; 0: p ends before it can be told.
func headerStart(p []byte) (h int, ok bool) {
	const iso = "dddd-dd-dd"
	if len(p) == 0 {
		return 0, false
	}
	switch c := p[0]; {
	case c == '<':
		for i := 1; i <= 4; i++ {
			if i == len(p) {
				return 0, false
			}
			switch c := p[i]; {
			case c == '>' && i > 1:
				return i + 1, true
			case c < '0' || c > '9' || i == 4:
				return i + 1, false
			}
		}
	case c >= 'A' && c <= 'Z':
		if len(p) < 4 {
			return 0, false
		}
		_, ok := month(string(p[:3]))
		return 4, ok && p[3] == ' '
	case c >= '0' && c <= '9':
		for i := 0; i < len(iso); i++ {
			if i == len(p) {
				return 0, false
			}
			c := p[i]
			if iso[i] == 'd' && (c < '0' || c > '9') || iso[i] == '-' && c != '-' {
				return i + 1, false
			}
		}
		return len(iso), true
	}
	return 1, false
}

func (d *Decoder) keepSample(p []byte) {
	if k := sampleBytes - len(d.sample); k > 0 {
		d.sample = append(d.sample, p[:min(k, len(p))]...)
	}
}

// counted reads a frame of n bytes; one over the maximum is skipped to its
// end: its header was checked, so its count is the sender's.
func (d *Decoder) counted(n int) ([]byte, Drop, error) {
	if n > d.max {
		p, _ := d.br.Peek(min(n, sampleBytes))
		d.keepSample(p)
		k, err := d.br.Discard(n)
		d.dropped = int64(k)
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
		d.dropped = int64(k)
		d.keepSample(d.buf[:k])
		return nil, DropHalfFrame, eof(err)
	}
	return trimFrame(d.buf), "", nil
}

// resync drops what is not a frame on an octet-counted stream up to and
// including the next LF.
func (d *Decoder) resync() ([]byte, Drop, error) {
	for {
		frag, err := d.br.ReadSlice('\n')
		d.keepSample(frag)
		d.dropped += int64(len(frag))
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, DropBadFrame, err
		}
		return nil, DropBadFrame, nil
	}
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
		d.dropped += int64(len(frag))
		if !tooLong {
			if len(d.buf)+len(frag) > d.max+1 {
				tooLong = true
				d.keepSample(d.buf)
				d.keepSample(frag)
				d.buf = d.buf[:0]
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
				d.keepSample(d.buf)
				return nil, DropHalfFrame, err
			}
			d.dropped = 0
			return nil, "", err
		}
		break
	}
	if tooLong {
		return nil, DropTooLong, nil
	}
	d.dropped = 0
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
