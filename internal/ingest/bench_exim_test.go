package ingest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// The parse and correlate stage on Exim's lines beside Postfix's: one
// generated mail flow (the same messages, recipients and outcomes, the
// same share of lines that carry nothing for a trace) written as Postfix
// logs it, as Exim logs it to syslog and as Exim writes its own log file.
// The sub-benchmarks of one run interleave (-count repeats all three), so
// their ratio holds on a loaded machine.

// genFlow is the mail flow: n messages, from a seeded generator.
type genMsg struct {
	t        time.Time
	from     string
	client   string
	rcpts    []string
	outcomes []byte // 's' delivered, 'd' deferred then delivered, 'b' bounced
	reject   bool   // refused at RCPT instead (no message)
}

func genFlow(n int) []genMsg {
	r := rand.New(rand.NewPCG(18, 5))
	t := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	out := make([]genMsg, n)
	for i := range out {
		t = t.Add(time.Duration(200+r.IntN(1000)) * time.Millisecond)
		m := genMsg{t: t, from: fmt.Sprintf("user%d@remote%d.test", r.IntN(5000), r.IntN(300)),
			client: fmt.Sprintf("203.0.%d.%d", r.IntN(256), 1+r.IntN(254)), reject: r.IntN(8) == 0}
		k := 1
		if r.IntN(5) == 0 {
			k += r.IntN(4)
		}
		for j := 0; j < k; j++ {
			m.rcpts = append(m.rcpts, fmt.Sprintf("u%d@uhu-banane.de", r.IntN(400)))
			o := byte('s')
			switch r.IntN(20) {
			case 0:
				o = 'd'
			case 1:
				o = 'b'
			}
			m.outcomes = append(m.outcomes, o)
		}
		out[i] = m
	}
	return out
}

// postfixLog writes the flow as Postfix logs it (smtpd, cleanup, qmgr,
// smtp, with connect and disconnect around each session).
func postfixLog(flow []genMsg) []byte {
	var b bytes.Buffer
	for i, m := range flow {
		ts := m.t.Format(time.Stamp)
		qid := fmt.Sprintf("%010X", 0x1000000+i)
		pid := 1000 + i%500
		fmt.Fprintf(&b, "%s mx postfix/smtpd[%d]: connect from mail.remote.test[%s]\n", ts, pid, m.client)
		if m.reject {
			fmt.Fprintf(&b, "%s mx postfix/smtpd[%d]: NOQUEUE: reject: RCPT from mail.remote.test[%s]: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table; from=<%s> to=<%s> proto=ESMTP helo=<mail.remote.test>\n", ts, pid, m.client, m.rcpts[0], m.from, m.rcpts[0])
			fmt.Fprintf(&b, "%s mx postfix/smtpd[%d]: disconnect from mail.remote.test[%s] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4\n", ts, pid, m.client)
			continue
		}
		fmt.Fprintf(&b, "%s mx postfix/smtpd[%d]: %s: client=mail.remote.test[%s]\n", ts, pid, qid, m.client)
		fmt.Fprintf(&b, "%s mx postfix/cleanup[%d]: %s: message-id=<gen%d@remote.test>\n", ts, pid+1, qid, i)
		fmt.Fprintf(&b, "%s mx postfix/qmgr[99]: %s: from=<%s>, size=%d, nrcpt=%d (queue active)\n", ts, qid, m.from, 2000+i%9000, len(m.rcpts))
		fmt.Fprintf(&b, "%s mx postfix/smtpd[%d]: disconnect from mail.remote.test[%s] ehlo=1 mail=1 rcpt=%d data=1 quit=1 commands=5\n", ts, pid, m.client, len(m.rcpts))
		for j, rc := range m.rcpts {
			switch m.outcomes[j] {
			case 'd':
				fmt.Fprintf(&b, "%s mx postfix/smtp[%d]: %s: to=<%s>, relay=mx.uhu-banane.de[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=4.3.0, status=deferred (host mx.uhu-banane.de[192.0.2.1] said: 451 4.3.0 try again later (in reply to RCPT TO command))\n", ts, pid+2, qid, rc)
				fallthrough
			case 's':
				fmt.Fprintf(&b, "%s mx postfix/smtp[%d]: %s: to=<%s>, relay=mx.uhu-banane.de[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ABC)\n", ts, pid+2, qid, rc)
			case 'b':
				fmt.Fprintf(&b, "%s mx postfix/smtp[%d]: %s: to=<%s>, relay=mx.uhu-banane.de[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced (host mx.uhu-banane.de[192.0.2.1] said: 550 5.1.1 <%s>: User unknown (in reply to RCPT TO command))\n", ts, pid+2, qid, rc, rc)
			}
		}
		fmt.Fprintf(&b, "%s mx postfix/qmgr[99]: %s: removed\n", ts, qid)
	}
	return b.Bytes()
}

// eximLog writes the flow as Exim logs it: to syslog (exim[pid]: ...)
// or, mainlog set, to its own file (its timestamp, [pid]). The same
// lines as postfixLog's, one for one where Exim has one: a connection, the
// arrival, a line per outcome, Completed, the end of the session.
func eximLog(flow []genMsg, mainlog bool) []byte {
	var b bytes.Buffer
	for i, m := range flow {
		pid := 1000 + i%500
		head := func(pid int) string {
			if mainlog {
				return fmt.Sprintf("%s [%d] ", m.t.Format("2006-01-02 15:04:05"), pid)
			}
			return fmt.Sprintf("%s mx exim[%d]: ", m.t.Format(time.Stamp), pid)
		}
		// both id formats, as after an upgrade to 4.97
		id := fmt.Sprintf("1v%04X-%06X-%02X", i%0x10000, i, i%256)
		if i%2 == 1 {
			id = fmt.Sprintf("1v%04X-%011X-%04X", i%0x10000, i, i%0x10000)
		}
		fmt.Fprintf(&b, "%sSMTP connection from mail.remote.test [%s]:41234 I=[192.0.2.10]:25 (TCP/IP connection count = 1)\n", head(pid), m.client)
		if m.reject {
			fmt.Fprintf(&b, "%sH=mail.remote.test [%s]:41234 I=[192.0.2.10]:25 F=<%s> rejected RCPT <%s>: Unknown user\n", head(pid), m.client, m.from, m.rcpts[0])
			fmt.Fprintf(&b, "%sSMTP connection from mail.remote.test [%s]:41234 I=[192.0.2.10]:25 closed by QUIT\n", head(pid), m.client)
			continue
		}
		fmt.Fprintf(&b, "%s%s <= %s H=mail.remote.test (mail.remote.test) [%s]:41234 I=[192.0.2.10]:25 P=esmtp S=%d id=gen%d@remote.test T=\"Generated message %d\"\n", head(pid), id, m.from, m.client, 2000+i%9000, i, i)
		fmt.Fprintf(&b, "%sSMTP connection from mail.remote.test [%s]:41234 I=[192.0.2.10]:25 closed by QUIT\n", head(pid), m.client)
		for j, rc := range m.rcpts {
			flag := "=>"
			if j > 0 {
				flag = "->"
			}
			switch m.outcomes[j] {
			case 'd':
				fmt.Fprintf(&b, "%s%s == %s R=dnslookup T=remote_smtp defer (-44) H=mx.uhu-banane.de [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<%s>: 451 4.3.0 try again later\n", head(pid+2), id, rc, rc)
				fallthrough
			case 's':
				fmt.Fprintf(&b, "%s%s %s %s R=dnslookup T=remote_smtp H=mx.uhu-banane.de [192.0.2.1]:25 C=\"250 2.0.0 Ok: queued as ABC\"\n", head(pid+2), id, flag, rc)
			case 'b':
				fmt.Fprintf(&b, "%s%s ** %s R=dnslookup T=remote_smtp H=mx.uhu-banane.de [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<%s>: 550 5.1.1 <%s>: User unknown\n", head(pid+2), id, rc, rc, rc)
			}
		}
		fmt.Fprintf(&b, "%s%s Completed\n", head(pid+2), id)
	}
	return b.Bytes()
}

// BenchmarkParseCorrelateFlow: the same generated flow (20,000 messages)
// as Postfix, Exim by syslog and Exim's own file log it; one op is the
// whole log, reported per line and per message.
func BenchmarkParseCorrelateFlow(b *testing.B) {
	flow := genFlow(20_000)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"postfix", postfixLog(flow)},
		{"exim-syslog", eximLog(flow, false)},
		{"exim-mainlog", eximLog(flow, true)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lines := bytes.Count(tc.data, []byte{'\n'})
			parseCorrelate(b, tc.data) // warm up
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.SetBytes(int64(len(tc.data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				parseCorrelate(b, tc.data)
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			total := float64(lines) * float64(b.N)
			b.ReportMetric(total/b.Elapsed().Seconds(), "lines/s")
			b.ReportMetric(float64(len(flow))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/total, "allocs/line")
		})
	}
}

// The generated logs are what they claim: every message of the flow is a
// trace, whichever MTA logged it, with the same rows.
func TestGeneratedFlowLogs(t *testing.T) {
	flow := genFlow(300)
	var want int
	for _, m := range flow {
		if m.reject {
			want++
			continue
		}
		uniq := map[string]bool{}
		for _, rc := range m.rcpts {
			uniq[rc] = true
		}
		want += len(uniq)
	}
	for name, data := range map[string][]byte{"postfix": postfixLog(flow), "exim-syslog": eximLog(flow, false), "exim-mainlog": eximLog(flow, true)} {
		s := newMemStore()
		st, err := IngestReader(t.Context(), bytes.NewReader(data), benchCfg, s.Append)
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, evs := range s.traces {
			seen := map[string]bool{}
			for _, e := range evs {
				if e.Recipient != "" && !seen[e.Recipient] {
					seen[e.Recipient] = true
					rows++
				}
			}
		}
		if len(s.traces) != len(flow) || rows != want || len(st.NotUnderstood) != 0 {
			t.Errorf("%s: %d traces (want %d), %d rows (want %d), not understood %v", name, len(s.traces), len(flow), rows, want, st.NotUnderstood)
		}
	}
}
