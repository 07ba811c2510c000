package postfix

import "testing"

// denseMessages are the message parts of the lines of test/ingestbench's
// event-dense log: what ParseMessage reads for every line of a busy relay.
var denseMessages = []struct{ daemon, msg string }{
	{"smtpd", "A1000001: client=mail17.example.net[192.0.2.18]"},
	{"cleanup", "A1000001: message-id=<1.dense@example.net>"},
	{"qmgr", "A1000001: from=<sender1@example.net>, size=2001, nrcpt=2 (queue active)"},
	{"smtp", "A1000001: to=<user1@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.4.1, status=deferred (connect to mx.example.org[198.51.100.7]:25: Connection timed out)"},
	{"smtp", "A1000001: to=<other1@example.com>, relay=mx.example.com[203.0.113.9]:25, delay=1.4, delays=0.1/0/0.5/0.8, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X1)"},
	{"smtp", "A1000001: to=<user1@example.org>, relay=mx.example.org[198.51.100.7]:25, delay=3.2, delays=2.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as Y1)"},
	{"qmgr", "A1000001: removed"},
}

// BenchmarkParseMessageDense: ParseMessage of the dense log's seven lines
// (one op is all seven).
func BenchmarkParseMessageDense(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, m := range denseMessages {
			r := ParseMessage(m.daemon, m.msg)
			if r.QueueID == "" {
				b.Fatal(m.msg)
			}
		}
	}
}
