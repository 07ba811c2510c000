// Package syslog is everything the ingest knows about syslog: the lines of
// files, the frames of the wire, and messages whose header a sender already
// split.
//
//   - Lines of files (as rsyslog, syslog-ng or journald's forwarders write
//     them): Parser and ParseLine split one into its header and message.
//     Two timestamp forms are accepted:
//
//     RFC 3164:  Mar  1 12:34:56 host prog[pid]: msg        (no year)
//     RFC 3339:  2023-03-01T12:34:56.123456+01:00 host prog[pid]: msg
//
//   - Frames on the wire (RFC 6587 over TCP or TLS, one datagram per message
//     over UDP): Decoder reads octet-counted or newline-ended frames, the
//     framing chosen by a stream's first frame (a count only when a syslog
//     header follows it), and ParseFrame reads one frame's "<PRI>" and, for an
//     RFC 5424 message, its header fields.
//
//   - Fields: a message whose header a sender already split (an RFC 5424
//     frame, a JSON record of Fluent Bit or Vector) is read as its Fields by
//     Parser.ParseFields, never joined into a line to be split again.
//
// Everything ends as a Line: the time, host, program, pid and message the
// ingest's sources read.
//
// The libraries that implement the syslog RFCs (influxdata/go-syslog, now
// archived, and its continuation leodido/go-syslog v4) were measured against
// this package (docs/benchmarks.md): they parse only what travels on the
// wire (a `<PRI>` prefix, which files on disk do not carry), reject the
// damaged lines real files hold (a missing colon after the pid, a truncated
// leading year), stop reading a stream at its first oversized frame, and
// allocate ten times per frame where this package allocates once or twice.
package syslog
