package stalwart

import (
	"reflect"
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Lines in the shapes Stalwart's text tracer writes, from its source
// (crates/trc/src/serializers/text.rs) and lines users posted in its
// issue tracker (addresses and hosts replaced): the event id, and the
// keys with the span's first and the event's own last.
func TestParse(t *testing.T) {
	cases := []struct {
		line, id, level, desc string
		keys                  []KV
	}{
		{
			// 0.11, a log file's line: the span's keys only
			`2025-01-17T16:59:03Z INFO Delivery attempt started (delivery.attempt-start) queueId = 219819146581090473, from = <>, to = ["<user@example.com>"], size = 3959, total = 1`,
			"delivery.attempt-start", "INFO", "Delivery attempt started",
			[]KV{{Key: "queueId", Value: "219819146581090473"}, {Key: "from", Value: "<>"},
				{Key: "to", Value: `["<user@example.com>"]`, List: []string{"<user@example.com>"}}, {Key: "size", Value: "3959"}, {Key: "total", Value: "1"}},
		},
		{
			// the session's keys, then the queue's
			`2024-12-04T07:56:48Z INFO Queued message for delivery (queue.queue-message) listenerId = "smtp", localPort = 25, remoteIp = 192.0.2.201, remotePort = 54881, queueId = 211852210455828918, from = "noreply@example.org", to = ["a@example.com", "b@example.com"], size = 31191, nextRetry = 2024-12-04T07:56:48Z, nextDsn = 2024-12-05T07:56:48Z, expires = 2024-12-09T07:56:48Z`,
			"queue.queue-message", "INFO", "Queued message for delivery",
			[]KV{{Key: "listenerId", Value: "smtp", Quoted: true}, {Key: "localPort", Value: "25"}, {Key: "remoteIp", Value: "192.0.2.201"},
				{Key: "remotePort", Value: "54881"}, {Key: "queueId", Value: "211852210455828918"}, {Key: "from", Value: "noreply@example.org", Quoted: true},
				{Key: "to", Value: `["a@example.com", "b@example.com"]`, List: []string{"a@example.com", "b@example.com"}}, {Key: "size", Value: "31191"},
				{Key: "nextRetry", Value: "2024-12-04T07:56:48Z"}, {Key: "nextDsn", Value: "2024-12-05T07:56:48Z"}, {Key: "expires", Value: "2024-12-09T07:56:48Z"}},
		},
		{
			// a key twice: the span's "to" list, then the event's own
			`INFO DSN permanent failure notification (delivery.dsn-perm-fail) queueId = 197417664021987369, from = "noreply@example.eu", to = ["postmaster@example.eu"], size = 2238, total = 1, to = "postmaster@example.eu", hostname = "localhost", code = 451, details = "Address lookup failed.", total = 64`,
			"delivery.dsn-perm-fail", "INFO", "DSN permanent failure notification",
			[]KV{{Key: "queueId", Value: "197417664021987369"}, {Key: "from", Value: "noreply@example.eu", Quoted: true},
				{Key: "to", Value: `["postmaster@example.eu"]`, List: []string{"postmaster@example.eu"}}, {Key: "size", Value: "2238"}, {Key: "total", Value: "1"},
				{Key: "to", Value: "postmaster@example.eu", Quoted: true}, {Key: "hostname", Value: "localhost", Quoted: true}, {Key: "code", Value: "451"},
				{Key: "details", Value: "Address lookup failed.", Quoted: true}, {Key: "total", Value: "64"}},
		},
		{
			// escapes, a quote inside a string (not escaped by Stalwart), a
			// duration, a nested event
			`2025-02-01T10:00:00Z WARN Connection error (delivery.connect-error) queueId = 7, details = "said \"no\"\r\n", reason = "a "quoted" word", elapsed = 12ms, causedBy = Network error (network.read-error) { reason = "reset, by peer" }, total = 2`,
			"delivery.connect-error", "WARN", "Connection error",
			[]KV{{Key: "queueId", Value: "7"}, {Key: "details", Value: "said \"no\"\r\n", Quoted: true}, {Key: "reason", Value: `a "quoted" word`, Quoted: true},
				{Key: "elapsed", Value: "12ms"}, {Key: "causedBy", Value: `Network error (network.read-error) { reason = "reset, by peer" }`}, {Key: "total", Value: "2"}},
		},
		{
			// a description with parentheses of its own, no keys
			`DEBUG Message (re)scheduled (queue.rescheduled)`,
			"queue.rescheduled", "DEBUG", "Message (re)scheduled", nil,
		},
	}
	for _, c := range cases {
		e, ok := Parse(c.line)
		if !ok || e.ID != c.id || e.Level != c.level || e.Desc != c.desc || !reflect.DeepEqual(e.Keys, c.keys) {
			t.Errorf("%s:\n got %v %+v\nwant %s %s %q %+v", c.line, ok, e, c.id, c.level, c.desc, c.keys)
		}
	}
	for _, bad := range []string{"", "INFO no event here", "INFO Something (Not.An.Id) x = 1", "(x.y)"} {
		if e, ok := Parse(bad); ok {
			t.Errorf("%q parsed: %+v", bad, e)
		}
	}
	e, _ := Parse(cases[2].line)
	if to, _ := e.Last("to"); to.Value != "postmaster@example.eu" {
		t.Errorf("Last(to) = %+v", to)
	}
	if to, _ := e.First("to"); len(to.List) != 1 {
		t.Errorf("First(to) = %+v", to)
	}
	if e.Count("total") != 2 || e.Str("total") != "64" {
		t.Errorf("total: %d %q", e.Count("total"), e.Str("total"))
	}
}

func TestKindOf(t *testing.T) {
	for id, want := range map[string]kind{
		"queue.queue-message": kindQueued, "queue.queue-message-authenticated": kindQueued, "queue.queue-dsn": kindQueued,
		"delivery.attempt-start": kindAttemptStart, "delivery.delivered": kindDelivered, "delivery.dsn-success": kindDSN,
		"delivery.dsn-temp-fail": kindDSN, "delivery.dsn-perm-fail": kindDSN, "delivery.rcpt-to-rejected": kindRcptRejected,
		"delivery.connect-error": kindDomainError, "delivery.failed": kindDomainError, "queue.rescheduled": kindRescheduled,
		"delivery.completed": kindCompleted, "message-ingest.ham": kindIngested, "message-ingest.spam": kindIngested,
		"smtp.mail-from": kindMailFrom, "smtp.mailbox-does-not-exist": kindRcptRefused, "smtp.relay-not-allowed": kindRcptRefused,
		"spam.classify": kindSpamClassify, "smtp.rcpt-to": kindIgnored, "tls.handshake": kindIgnored, "imap.fetch": kindIgnored,
		"smtp.raw-input": kindIgnored, "delivery.raw-output": kindIgnored,
	} {
		if got := kindOf(id); got != want {
			t.Errorf("kindOf(%s) = %d, want %d", id, got, want)
		}
	}
}

func TestPolicy(t *testing.T) {
	for _, c := range []struct {
		code string
		want mailflow.EventType
	}{{"250", mailflow.EventDeliver}, {"550", mailflow.EventFail}, {"451", mailflow.EventDefer}, {"", mailflow.EventDefer}} {
		if got := replyType(c.code); got != c.want {
			t.Errorf("replyType(%q) = %s, want %s", c.code, got, c.want)
		}
	}
	for id, want := range map[string]mailflow.EventType{"delivery.dsn-success": mailflow.EventDeliver,
		"delivery.dsn-perm-fail": mailflow.EventFail, "delivery.dsn-temp-fail": mailflow.EventDefer} {
		if got := dsnType(id); got != want {
			t.Errorf("dsnType(%s) = %s", id, got)
		}
	}
	for id, want := range map[string]mailflow.EventType{"smtp.mailbox-does-not-exist": mailflow.EventFail,
		"smtp.relay-not-allowed": mailflow.EventFilterAsSpam, "smtp.rcpt-to-greylisted": mailflow.EventDefer} {
		if got := refusalType(id); got != want {
			t.Errorf("refusalType(%s) = %s", id, got)
		}
	}
	for in, want := range map[string]string{"2.0.0 Ok: queued as X": "2.0.0", "5.1.1 <x>: unknown": "5.1.1", "Ok": "", "1.2.3 x": "", "": ""} {
		if got := dsnCode(in); got != want {
			t.Errorf("dsnCode(%q) = %q, want %q", in, got, want)
		}
	}
	domains := []string{"example.com"}
	for _, c := range []struct {
		sender string
		auth   bool
		rcpts  []string
		want   mailflow.Direction
	}{
		{"a@example.net", false, []string{"b@example.com"}, mailflow.DirectionInbound},
		{"a@example.com", true, []string{"b@example.net"}, mailflow.DirectionOutbound},
		{"a@example.com", false, []string{"b@example.com"}, mailflow.DirectionInternal},
		{"", true, []string{"b@example.com"}, mailflow.DirectionInternal}, // a DSN to a local user
		{"a@example.net", false, nil, ""},
	} {
		if got := direction(domains, c.sender, c.auth, c.rcpts); got != c.want {
			t.Errorf("direction(%+v) = %s", c, got)
		}
	}
}

// timeSpace is the first space in line[19:36] as a plain loop finds it,
// for times of every length, syslog and Stalwart lines, spaces before,
// at and past the window, and bytes that are not ASCII.
func TestTimeSpace(t *testing.T) {
	plain := func(line string) int {
		for i := 19; i < len(line) && i <= 35; i++ {
			if line[i] == ' ' {
				return i
			}
		}
		return -1
	}
	lines := []string{
		"2025-01-17T16:59:03Z INFO Description (family.event) keys",
		"2025-01-17T16:59:03.123Z INFO x",
		"2025-01-17T16:59:03.123456789+01:00 WARN x",
		"2023-03-14T00:00:31.185246+01:00 helga postfix/smtpd[297535]: connect",
		"2023-03-14T00:00:31.185246+01:00",
		"2023-03-14T00:00:31 x",
		"2023-03-14 00:00:31 [12] 1ajLoq-0001wC-Pk <= a@b",
		"2023-03-14T00:00:31.1234567890123456789012345 x",
		"2023-03-14T00:00:31.12345678901234\xe9\xff\x80 x",
		"2023-03-14T00:00:31.\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80 x",
		"short",
		"2023-03-14T00:00:31.18",
	}
	for n := 19; n <= 40; n++ {
		b := []byte("2023-03-14T00:00:31.000000000000000000000000 rest")
		b[n] = ' '
		lines = append(lines, string(b), string(b[:n+1]))
	}
	for _, l := range lines {
		if len(l) < 19 {
			continue
		}
		if got, want := timeSpace(l), plain(l); got != want {
			t.Errorf("timeSpace(%q) = %d, want %d", l, got, want)
		}
	}
}
