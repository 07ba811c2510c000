package stalwart_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// feed runs lines through the ingest engine (so through the registry,
// the syslog header and Prepare) and returns the events, one per line:
// "TYPE recipient detail...".
func feed(t *testing.T, lines ...string) ([]mailflow.Event, ingest.Stats) {
	t.Helper()
	var evs []mailflow.Event
	c := ingest.NewCorrelator(ingest.Config{AcceptedDomains: []string{"example.com"}, Reference: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
		func(e []mailflow.Event) error { evs = append(evs, e...); return nil })
	for _, l := range lines {
		if err := c.Feed(l); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Flush()
	return evs, c.Stats()
}

func summary(evs []mailflow.Event) string {
	var out []string
	for _, e := range evs {
		s := string(e.Type)
		if e.Recipient != "" {
			s += " " + e.Recipient
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// a syslog line of the Stalwart service (journald to rsyslog, as users post them).
func sl(ts, msg string) string { return ts + " mail stalwart[1895]: " + msg }

func TestStalwartMessages(t *testing.T) {
	const q = "queueId = 211852210455828918, from = \"sender@example.net\", to = [\"user@example.com\"], size = 31191, total = 1"
	const sess = `listenerId = "smtp", localPort = 25, remoteIp = 192.0.2.201, remotePort = 54881`
	cases := []struct {
		name  string
		lines []string
		want  string
		check func(t *testing.T, evs []mailflow.Event)
	}{
		{
			"inbound, delivered into a mailbox (local delivery)",
			[]string{
				sl("2024-12-04T07:56:47Z", "2024-12-04T07:56:47Z INFO SMTP MAIL FROM command (smtp.mail-from) "+sess+`, from = "sender@example.net"`),
				sl("2024-12-04T07:56:47Z", "2024-12-04T07:56:47Z INFO SMTP RCPT TO command (smtp.rcpt-to) "+sess+`, to = "user@example.com"`),
				sl("2024-12-04T07:56:48Z", "2024-12-04T07:56:48Z INFO Queued message for delivery (queue.queue-message) "+sess+`, queueId = 211852210455828918, from = "sender@example.net", to = ["user@example.com"], size = 31191, nextRetry = 2024-12-04T07:56:48Z, nextDsn = 2024-12-05T07:56:48Z, expires = 2024-12-09T07:56:48Z`),
				sl("2024-12-04T07:56:48Z", "2024-12-04T07:56:48Z INFO Delivery attempt started (delivery.attempt-start) "+q),
				sl("2024-12-04T07:56:48Z", "2024-12-04T07:56:48Z INFO New delivery attempt for domain (delivery.domain-delivery-start) "+q+`, domain = "example.com", total = 0`),
				sl("2024-12-04T07:56:48Z", "2024-12-04T07:56:48Z INFO Message ingested (message-ingest.ham) "+q+`, accountId = 3, documentId = 12, mailboxId = [0], blobId = "ab12", changeId = 188, messageId = "<m1@example.net>", size = 31191, elapsed = 5ms`),
				sl("2024-12-04T07:56:48Z", "2024-12-04T07:56:48Z INFO DSN success notification (delivery.dsn-success) "+q+`, to = "user@example.com", hostname = "localhost", code = 250, details = "OK"`),
				sl("2024-12-04T07:56:48Z", "2024-12-04T07:56:48Z INFO Delivery attempt ended (delivery.attempt-end) "+q+`, elapsed = 9ms`),
				sl("2024-12-04T07:56:48Z", "2024-12-04T07:56:48Z INFO Delivery completed (delivery.completed) "+q+`, elapsed = 12ms`),
			},
			"Receive; Submit user@example.com; Deliver user@example.com",
			func(t *testing.T, evs []mailflow.Event) {
				r, d := evs[0], evs[2]
				if r.Sender != "sender@example.net" || r.FromIP != "192.0.2.201" || r.Size != 31191 || r.Direction != mailflow.DirectionInbound {
					t.Errorf("receive %+v", r)
				}
				if d.MessageID != "m1@example.net" || !strings.Contains(d.Detail, "mailbox") || d.MessageTraceID != r.MessageTraceID {
					t.Errorf("deliver %+v", d)
				}
			},
		},
		{
			"outbound over SMTP: deferred, rescheduled, then delivered by the remote MX",
			[]string{
				sl("2025-01-12T08:00:29Z", `2025-01-12T08:00:29Z INFO Queued message submission for delivery (queue.queue-message-authenticated) listenerId = "submission", localPort = 587, remoteIp = 198.51.100.7, remotePort = 40000, queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546`),
				sl("2025-01-12T08:00:29Z", `2025-01-12T08:00:29Z INFO Delivery attempt started (delivery.attempt-start) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1`),
				sl("2025-01-12T08:00:29Z", `2025-01-12T08:00:29Z INFO New delivery attempt for domain (delivery.domain-delivery-start) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1, domain = "example.org", total = 0`),
				sl("2025-01-12T08:00:30Z", `2025-01-12T08:00:30Z INFO Connection error (delivery.connect-error) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1, hostname = "mx.example.org", reason = "Connection refused (os error 111)"`),
				sl("2025-01-12T08:00:30Z", `2025-01-12T08:00:30Z INFO Message rescheduled for delivery (queue.rescheduled) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1, nextRetry = 2025-01-12T08:02:30Z, nextDsn = 2025-01-13T08:00:29Z, expires = 2025-01-17T08:00:29Z`),
				sl("2025-01-12T08:02:30Z", `2025-01-12T08:02:30Z INFO Delivery attempt started (delivery.attempt-start) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1`),
				sl("2025-01-12T08:02:31Z", `2025-01-12T08:02:31Z INFO Message delivered (delivery.delivered) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1, hostname = "mx.example.org", to = "you@example.org", code = 250, details = "2.0.0 Ok: queued as 4PbC4x", elapsed = 80ms`),
				sl("2025-01-12T08:02:31Z", `2025-01-12T08:02:31Z INFO DSN success notification (delivery.dsn-success) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1, to = "you@example.org", hostname = "mx.example.org", code = 250, details = "2.0.0 Ok: queued as 4PbC4x"`),
				sl("2025-01-12T08:02:31Z", `2025-01-12T08:02:31Z INFO Delivery completed (delivery.completed) queueId = 218919241638744943, from = "me@example.com", to = ["you@example.org"], size = 1546, total = 1, elapsed = 122000ms`),
			},
			"Receive; Submit you@example.org; Defer you@example.org; Deliver you@example.org",
			func(t *testing.T, evs []mailflow.Event) {
				if d := evs[2]; !strings.Contains(d.Detail, "Connection refused") || !strings.Contains(d.Detail, "2025-01-12T08:02:30Z") {
					t.Errorf("deferral %+v", d)
				}
				if d := evs[3]; d.Relay != "mx.example.org" || d.SMTPResponse != "250 2.0.0 Ok: queued as 4PbC4x" || d.DSN != "2.0.0" || d.Direction != mailflow.DirectionOutbound {
					t.Errorf("delivery %+v", d)
				}
			},
		},
		{
			// 0.11's null sender unquoted, and a recipient in angle
			// brackets; a mailbox over its quota: rescheduled, nothing said
			"a bounce to a full mailbox, rescheduled",
			[]string{
				sl("2025-01-17T16:59:03Z", `2025-01-17T16:59:03Z INFO Delivery attempt started (delivery.attempt-start) queueId = 219819146581090473, from = <>, to = ["<full@example.com>"], size = 3959, total = 1`),
				sl("2025-01-17T16:59:03Z", `2025-01-17T16:59:03Z INFO New delivery attempt for domain (delivery.domain-delivery-start) queueId = 219819146581090473, from = <>, to = ["<full@example.com>"], size = 3959, total = 1, domain = "example.com", total = 0`),
				sl("2025-01-17T16:59:03Z", `2025-01-17T16:59:03Z INFO Message rescheduled for delivery (queue.rescheduled) queueId = 219819146581090473, from = <>, to = ["<full@example.com>"], size = 3959, total = 1, nextRetry = 2025-01-17T17:01:03Z, nextDsn = 2025-01-22T07:12:27Z, expires = 2025-01-22T07:12:17Z`),
				sl("2025-01-17T16:59:03Z", `2025-01-17T16:59:03Z INFO Delivery attempt ended (delivery.attempt-end) queueId = 219819146581090473, from = <>, to = ["<full@example.com>"], size = 3959, total = 1, elapsed = 8ms`),
			},
			"Defer full@example.com",
			func(t *testing.T, evs []mailflow.Event) {
				if evs[0].Sender != "" || evs[0].Size != 3959 {
					t.Errorf("%+v", evs[0])
				}
			},
		},
		{
			"rejected by the remote server: failed, and a DSN queued for the sender",
			[]string{
				sl("2024-09-20T10:38:40Z", `2024-09-20T10:38:40Z INFO Delivery attempt started (delivery.attempt-start) queueId = 197417664021987369, from = "noreply@example.com", to = ["nobody@example.org"], size = 2238, total = 1`),
				sl("2024-09-20T10:38:44Z", `2024-09-20T10:38:44Z INFO SMTP RCPT TO rejected (delivery.rcpt-to-rejected) queueId = 197417664021987369, from = "noreply@example.com", to = ["nobody@example.org"], size = 2238, total = 1, hostname = "mx.example.org", to = "nobody@example.org", code = 550, details = "5.1.1 <nobody@example.org>: Recipient address rejected: User unknown", elapsed = 30ms`),
				sl("2024-09-20T10:38:44Z", `2024-09-20T10:38:44Z INFO DSN permanent failure notification (delivery.dsn-perm-fail) queueId = 197417664021987369, from = "noreply@example.com", to = ["nobody@example.org"], size = 2238, total = 1, to = "nobody@example.org", hostname = "mx.example.org", code = 550, details = "5.1.1 <nobody@example.org>: Recipient address rejected: User unknown", total = 0`),
				sl("2024-09-20T10:38:44Z", `2024-09-20T10:38:44Z INFO Queued DSN for delivery (queue.queue-dsn) queueId = 197417664021987369, from = "noreply@example.com", to = ["nobody@example.org"], size = 2238, total = 1, queueId = 197417664021987400, from = "<>", to = ["noreply@example.com"], size = 3100, nextRetry = 2024-09-20T10:38:44Z, nextDsn = 2024-09-21T10:38:44Z, expires = 2024-09-25T10:38:44Z`),
			},
			"Fail nobody@example.org; Notify; Receive; Submit noreply@example.com",
			func(t *testing.T, evs []mailflow.Event) {
				if f := evs[0]; f.DSN != "5.1.1" || !strings.HasPrefix(f.SMTPResponse, "550 5.1.1") || f.Relay != "mx.example.org" {
					t.Errorf("fail %+v", f)
				}
				if evs[1].MessageTraceID != evs[0].MessageTraceID || evs[2].MessageTraceID == evs[0].MessageTraceID || evs[2].Sender != "" {
					t.Errorf("the DSN: %+v / %+v", evs[1], evs[2])
				}
			},
		},
		{
			"recipients refused during the SMTP session: one message, no queue id",
			[]string{
				sl("2025-03-01T09:00:00Z", `2025-03-01T09:00:00Z INFO SMTP MAIL FROM command (smtp.mail-from) listenerId = "smtp", localPort = 25, remoteIp = 203.0.113.9, remotePort = 33000, from = "spammer@example.net"`),
				sl("2025-03-01T09:00:01Z", `2025-03-01T09:00:01Z INFO Mailbox does not exist (smtp.mailbox-does-not-exist) listenerId = "smtp", localPort = 25, remoteIp = 203.0.113.9, remotePort = 33000, to = "ghost@example.com"`),
				sl("2025-03-01T09:00:01Z", `2025-03-01T09:00:01Z INFO Relay not allowed (smtp.relay-not-allowed) listenerId = "smtp", localPort = 25, remoteIp = 203.0.113.9, remotePort = 33000, to = "victim@example.org"`),
			},
			"Receive; Fail ghost@example.com; FilterAsSpam victim@example.org",
			func(t *testing.T, evs []mailflow.Event) {
				if evs[0].MessageTraceID != evs[2].MessageTraceID || evs[1].Sender != "spammer@example.net" || evs[1].ClientIP != "203.0.113.9" ||
					evs[1].SMTPResponse != "550 5.1.2 Mailbox does not exist." || evs[1].DSN != "5.1.2" {
					t.Errorf("%+v", evs)
				}
			},
		},
		{
			// the OpenTelemetry form (internal/ingest/server/otlp.go writes
			// a record of Stalwart's exporter as this line): the event's own
			// keys and its span id, no span keys
			"OpenTelemetry records, tied by span id",
			[]string{
				"2025-05-01T10:00:00Z mail stalwart: INFO Delivery attempt started (delivery.attempt-start) spanId = 99, queueId = 5000, from = \"a@example.net\", to = [\"x@example.com\", \"y@example.com\"], size = 10, total = 2",
				"2025-05-01T10:00:01Z mail stalwart: INFO Message delivered (delivery.delivered) spanId = 99, hostname = \"lmtp.example.com\", to = \"x@example.com\", code = 250, details = \"2.1.5 Ok\"",
				"2025-05-01T10:00:01Z mail stalwart: INFO SMTP RCPT TO rejected (delivery.rcpt-to-rejected) spanId = 99, hostname = \"lmtp.example.com\", to = \"y@example.com\", code = 452, details = \"4.2.2 Mailbox full\"",
				"2025-05-01T10:00:01Z mail stalwart: INFO Message rescheduled for delivery (queue.rescheduled) spanId = 99, nextRetry = \"2025-05-01T10:05:00Z\"",
				"2025-05-01T10:00:01Z mail stalwart: INFO Delivery attempt ended (delivery.attempt-end) spanId = 99, elapsed = 5",
			},
			"Deliver x@example.com; Defer y@example.com; Defer y@example.com",
			nil,
		},
		{
			// Stalwart's own log file: no syslog header (ingest's shapes)
			"its own log file",
			[]string{
				`2025-01-12T08:00:29Z INFO Queued message for delivery (queue.queue-message) listenerId = "smtp", localPort = 25, remoteIp = 192.0.2.9, remotePort = 5000, queueId = 42, from = "s@example.net", to = ["u@example.com"], size = 100`,
				`2025-01-12T08:00:30Z INFO DSN success notification (delivery.dsn-success) queueId = 42, from = "s@example.net", to = ["u@example.com"], size = 100, total = 1, to = "u@example.com", hostname = "localhost", code = 250, details = "OK"`,
				`2025-01-12T08:00:30Z INFO TLS handshake (tls.handshake) listenerId = "smtp", localPort = 25, remoteIp = 192.0.2.9, remotePort = 5000, version = "TLSv1_3"`,
			},
			"Receive; Submit u@example.com; Deliver u@example.com",
			nil,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, st := feed(t, c.lines...)
			if got := summary(evs); got != c.want {
				t.Fatalf("got  %s\nwant %s\nstats %+v", got, c.want, st)
			}
			for _, e := range evs {
				if err := e.Validate(); err != nil {
					t.Errorf("%v: %+v", err, e)
				}
			}
			if len(st.NotUnderstood) != 0 {
				t.Errorf("not understood: %v", st.NotUnderstood)
			}
			if c.check != nil {
				c.check(t, evs)
			}
		})
	}
}

// What a whole store makes of the events: the rows each message gets.
func TestStalwartRows(t *testing.T) {
	lines := []string{
		sl("2024-12-04T07:56:48Z", `2024-12-04T07:56:48Z INFO Queued message for delivery (queue.queue-message) listenerId = "smtp", localPort = 25, remoteIp = 192.0.2.1, remotePort = 1, queueId = 1, from = "s@example.net", to = ["a@example.com", "b@example.org"], size = 10`),
		sl("2024-12-04T07:56:49Z", `2024-12-04T07:56:49Z INFO DSN success notification (delivery.dsn-success) queueId = 1, from = "s@example.net", to = ["a@example.com", "b@example.org"], size = 10, total = 2, to = "a@example.com", hostname = "localhost", code = 250, details = "OK"`),
		sl("2024-12-04T07:56:49Z", `2024-12-04T07:56:49Z INFO DSN temporary failure notification (delivery.dsn-temp-fail) queueId = 1, from = "s@example.net", to = ["a@example.com", "b@example.org"], size = 10, total = 2, to = "b@example.org", hostname = "mx.example.org", code = 421, details = "4.7.0 try later"`),
	}
	evs, _ := feed(t, lines...)
	byRcpt := map[string][]mailflow.Event{}
	for _, e := range evs {
		if e.Recipient != "" {
			byRcpt[e.Recipient] = append(byRcpt[e.Recipient], e)
		}
	}
	var got []string
	for r, es := range byRcpt {
		got = append(got, fmt.Sprintf("%s %s", r, mailflow.DeriveStatus(es)))
	}
	sort.Strings(got)
	if want := "a@example.com Delivered, b@example.org Pending"; strings.Join(got, ", ") != want {
		t.Errorf("rows %v, want %s", got, want)
	}
}
