package server

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// A record of the write-ahead log is one of:
//
//   - messages a reader accepted: recMessages, the transport, the count,
//     then each message: msgLine and the line, or msgFields and the
//     fields (Timestamp, Time as time.MarshalBinary, Host, App, ProcID,
//     Message), every string as a uvarint length and its bytes;
//   - a move of the correlator's clock in a quiet period: recAdvance and
//     the log time (time.MarshalBinary), so that a replay releases held
//     messages where the first reading did.
const (
	recMessages byte = 1
	recAdvance  byte = 2

	msgLine   byte = 0
	msgFields byte = 1
)

var errBadRecord = errors.New("ingest: a write-ahead log record that does not decode")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	tb, _ := t.MarshalBinary() // fails only for a zone offset that is not whole minutes
	b = append(b, byte(len(tb)))
	return append(b, tb...)
}

// encodeMessages appends the record of msgs to b.
func encodeMessages(b []byte, transport string, msgs []syslog.Message) []byte {
	b = append(b, recMessages)
	b = appendString(b, transport)
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for _, m := range msgs {
		if f := m.Fields; f != nil {
			b = append(b, msgFields)
			b = appendString(b, f.Timestamp)
			b = appendTime(b, f.Time)
			b = appendString(b, f.Host)
			b = appendString(b, f.App)
			b = appendString(b, f.ProcID)
			b = appendString(b, f.Message)
			continue
		}
		b = append(b, msgLine)
		b = appendString(b, m.Line)
	}
	return b
}

func encodeAdvance(b []byte, t time.Time) []byte {
	return appendTime(append(b, recAdvance), t)
}

type recDecoder struct {
	b   []byte
	err bool
}

func (d *recDecoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *recDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recDecoder) bytes(n uint64) []byte {
	if uint64(len(d.b)) < n {
		d.err = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// string copies: a line the correlator keeps must not pin the record.
func (d *recDecoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *recDecoder) time() time.Time {
	var t time.Time
	if b := d.bytes(uint64(d.byte())); !d.err {
		if t.UnmarshalBinary(b) != nil {
			d.err = true
		}
	}
	return t
}

// decodeRecord reads a record: the messages and their transport, or the
// clock's move (advance, when not zero).
func decodeRecord(b []byte) (transport string, msgs []syslog.Message, advance time.Time, err error) {
	d := recDecoder{b: b}
	switch d.byte() {
	case recAdvance:
		advance = d.time()
		if d.err || advance.IsZero() {
			return "", nil, time.Time{}, errBadRecord
		}
		return "", nil, advance, nil
	case recMessages:
	default:
		return "", nil, time.Time{}, errBadRecord
	}
	transport = d.string()
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		return "", nil, time.Time{}, errBadRecord
	}
	msgs = make([]syslog.Message, 0, n)
	for i := uint64(0); i < n && !d.err; i++ {
		switch d.byte() {
		case msgLine:
			msgs = append(msgs, syslog.Message{Line: d.string()})
		case msgFields:
			f := &syslog.Fields{Timestamp: d.string(), Time: d.time()}
			f.Host, f.App, f.ProcID, f.Message = d.string(), d.string(), d.string(), d.string()
			msgs = append(msgs, syslog.Message{Fields: f})
		default:
			d.err = true
		}
	}
	if d.err || len(d.b) != 0 {
		return "", nil, time.Time{}, errBadRecord
	}
	return transport, msgs, time.Time{}, nil
}
