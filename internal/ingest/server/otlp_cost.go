package server

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// What an OTLP logs body will cost once pdata has decoded it, counted
// before it is decoded (see otlp.go). pdata decodes a body whole, with a
// recursive decoder, into objects that weigh far more than their bytes on
// the wire; the walk here reads only the framing (field numbers, wire
// types, lengths: protowire, the protobuf module's own wire reader, which
// allocates nothing) of the few messages of the logs schema, never a value,
// so that a body pdata would turn into gigabytes, or follow a million
// levels deep, is refused before it is decoded. What is counted is an
// upper bound: TestOTLPCostBoundsDecoding compares it with what pdata
// allocates for bodies of every shape.

// otlpCost is what a body will cost decoded.
type otlpCost struct {
	records int   // log records
	bytes   int64 // an upper bound of the bytes pdata allocates to decode it
}

// The messages of the OTLP logs schema whose fields are messages
// (opentelemetry/proto/{collector/logs,logs,resource,common}/v1).
type otlpMsg uint8

const (
	mNone otlpMsg = iota
	mRequest
	mResourceLogs
	mResource
	mScopeLogs
	mScope
	mRecord
	mKeyValue
	mAnyValue
	mArray
	mKVList
	mEntityRef
)

// otlpChild is the message a field of a message holds (mNone: a value).
func otlpChild(m otlpMsg, field protowire.Number) otlpMsg {
	switch m {
	case mRequest:
		if field == 1 {
			return mResourceLogs
		}
	case mResourceLogs:
		switch field {
		case 1:
			return mResource
		case 2:
			return mScopeLogs
		}
	case mResource:
		switch field {
		case 1:
			return mKeyValue
		case 3:
			return mEntityRef
		}
	case mScopeLogs:
		switch field {
		case 1:
			return mScope
		case 2:
			return mRecord
		}
	case mScope:
		if field == 3 {
			return mKeyValue
		}
	case mRecord:
		switch field {
		case 5:
			return mAnyValue
		case 6:
			return mKeyValue
		}
	case mKeyValue:
		if field == 2 {
			return mAnyValue
		}
	case mAnyValue:
		switch field {
		case 5:
			return mArray
		case 6:
			return mKVList
		}
	case mArray:
		if field == 1 {
			return mAnyValue
		}
	case mKVList:
		if field == 1 {
			return mKeyValue
		}
	}
	return mNone
}

// otlpObjectBytes bounds what pdata allocates for one message of a kind:
// the struct, its pointer in the slice that holds it, and that slice's
// growth (doubling: twice the slots), measured against pdata by
// TestOTLPCostBoundsDecoding.
func otlpObjectBytes(m otlpMsg) int64 {
	switch m {
	case mResourceLogs, mScopeLogs, mRecord:
		return 256
	}
	return 128
}

// otlpBytesPerString bounds what a string or bytes value costs besides its
// bytes (its header, its copy rounded up to a size class).
const otlpBytesPerString = 48

var (
	errOTLPDepth = fmt.Errorf("values nested deeper than %d levels", maxJSONDepth)
	errOTLPWire  = errors.New("a protobuf body that does not parse")
)

// protoCost walks a protobuf ExportLogsServiceRequest.
func protoCost(b []byte) (otlpCost, error) {
	type frame struct {
		m   otlpMsg
		end int
	}
	var (
		c     otlpCost
		stack = [maxJSONDepth + 1]frame{{mRequest, len(b)}}
		depth = 0
		pos   = 0
	)
	c.bytes = int64(len(b)) // what the decoder keeps of the body
	for {
		for depth > 0 && pos == stack[depth].end {
			depth--
		}
		if pos == len(b) {
			if depth != 0 {
				return c, errOTLPWire
			}
			return c, nil
		}
		num, typ, n := protowire.ConsumeTag(b[pos:])
		if n < 0 {
			return c, errOTLPWire
		}
		pos += n
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b[pos:])
			if n < 0 || pos+n > stack[depth].end {
				return c, errOTLPWire
			}
			child := otlpChild(stack[depth].m, num)
			if child == mNone {
				c.bytes += otlpBytesPerString
				pos += n
				continue
			}
			if depth+1 > maxJSONDepth {
				return c, errOTLPDepth
			}
			if child == mRecord {
				c.records++
			}
			c.bytes += otlpObjectBytes(child)
			pos += n - len(v) // into the message
			depth++
			stack[depth] = frame{child, pos + len(v)}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b[pos:])
			if n < 0 || pos+n > stack[depth].end {
				return c, errOTLPWire
			}
			pos += n
		}
	}
}

// otlpJSONObjectBytes bounds what pdata allocates for a JSON object or
// array: the largest of the messages it may be (a record, a resource, a
// scope).
const otlpJSONObjectBytes = 256

// jsonCost reads a JSON body's text: every object and array of it (each
// '{' and '[' outside strings) may become a pdata object, and every string
// is copied; an element of an array that is not an object is no message
// of the schema, and pdata refuses it. The records are counted once
// decoded.
func jsonCost(b []byte) (otlpCost, error) {
	var c otlpCost
	c.bytes = int64(len(b))
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		switch ch := b[i]; {
		case inString:
			if ch == '\\' {
				i++
			} else if ch == '"' {
				inString = false
			}
		case ch == '"':
			inString = true
			c.bytes += otlpBytesPerString
		case ch == '{' || ch == '[':
			c.bytes += otlpJSONObjectBytes
			if depth++; depth > maxJSONDepth {
				return c, errOTLPDepth
			}
		case ch == ']' || ch == '}':
			depth--
		}
	}
	return c, nil
}
