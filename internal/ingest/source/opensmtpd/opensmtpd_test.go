package opensmtpd

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

var testCfg = source.Config{AcceptedDomains: []string{"lab.test"}, LinkWait: 5 * time.Minute, ForgetAfter: 10 * time.Minute, MaxIdle: 7 * 24 * time.Hour}

type lab struct {
	t      *testing.T
	env    *source.Env
	src    *Source
	events []mailflow.Event
}

func newLab(t *testing.T, cfg source.Config) *lab {
	env := &source.Env{}
	return &lab{t: t, env: env, src: New(cfg, env).(*Source)}
}

func (l *lab) feed(lines ...string) {
	l.t.Helper()
	for _, line := range lines {
		sl, err := syslog.ParseLine(line, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), nil)
		if err != nil {
			l.t.Fatalf("%q: %v", line, err)
		}
		v, ok := l.src.Prepare(sl.Program, sl.Message)
		if !ok {
			l.t.Fatalf("%q: not claimed", line)
		}
		l.env.Stats.Lines++
		if sl.Time.After(l.env.Now) {
			l.env.Now = sl.Time
		}
		if v.Ignore {
			l.env.Stats.Ignored++
			continue
		}
		l.src.Consume(&source.Line{Line: sl, Verdict: v, UTC: sl.Time.UTC(), Raw: line})
		for _, e := range l.env.Out {
			if err := e.Validate(); err != nil {
				l.t.Errorf("invalid event %+v: %v", e, err)
			}
		}
		l.events = append(l.events, l.env.Out...)
		l.env.Out = nil
	}
}

// rows: "trace: rcpt Status Direction [types]", sorted (see the Exim
// source's test).
func (l *lab) rows() []string {
	type key struct{ trace, rcpt string }
	byRow := map[key][]mailflow.Event{}
	msgLevel := map[string][]mailflow.Event{}
	dir := map[string]mailflow.Direction{}
	names := map[string]string{}
	for _, e := range l.events {
		if _, ok := names[e.MessageTraceID]; !ok {
			names[e.MessageTraceID] = fmt.Sprintf("m%d", len(names)+1)
		}
		if e.Direction != "" {
			dir[e.MessageTraceID] = e.Direction
		}
		if e.Recipient == "" {
			msgLevel[e.MessageTraceID] = append(msgLevel[e.MessageTraceID], e)
			continue
		}
		byRow[key{e.MessageTraceID, e.Recipient}] = append(byRow[key{e.MessageTraceID, e.Recipient}], e)
	}
	var out []string
	for k, evs := range byRow {
		all := append(append([]mailflow.Event{}, msgLevel[k.trace]...), evs...)
		sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
		var types []string
		for _, e := range all {
			types = append(types, string(e.Type))
		}
		via := ""
		for _, e := range evs {
			if e.ExpandedFrom != "" {
				via = " via " + e.ExpandedFrom
			}
		}
		out = append(out, fmt.Sprintf("%s: %s %s %s%s [%s]", names[k.trace], k.rcpt, mailflow.DeriveStatus(evs), dir[k.trace], via, strings.Join(types, " ")))
	}
	sort.Strings(out)
	return out
}

func (l *lab) want(want ...string) {
	l.t.Helper()
	if got := l.rows(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		l.t.Errorf("rows:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func (l *lab) dsn(typ mailflow.EventType, rcpt string) string {
	for _, e := range l.events {
		if e.Type == typ && e.Recipient == rcpt {
			return e.DSN
		}
	}
	return "(none)"
}

// OpenSMTPD 6.8's lines (Debian's opensmtpd), one flow per case.
func TestScenarios(t *testing.T) {
	const in = "Dec  5 10:00:00 mx smtpd[100]: 1a2b3c4d5e6f7081 smtp connected address=203.0.113.25 host=mail.remote.test"
	l := newLab(t, testCfg)
	l.feed(
		// delivered locally (mda, LMTP to Dovecot)
		in,
		"Dec  5 10:00:00 mx smtpd[100]: 1a2b3c4d5e6f7081 smtp tls ciphers=TLSv1.3:TLS_AES_256_GCM_SHA384:256",
		"Dec  5 10:00:01 mx smtpd[100]: 1a2b3c4d5e6f7081 smtp message msgid=0b5e8a3c size=712 nrcpt=1 proto=ESMTP",
		"Dec  5 10:00:01 mx smtpd[100]: 1a2b3c4d5e6f7081 smtp envelope evpid=0b5e8a3c1d2e3f40 from=<sender@remote.test> to=<bob@lab.test>",
		"Dec  5 10:00:01 mx smtpd[100]: 1a2b3c4d5e6f7081 smtp disconnected reason=quit",
		"Dec  5 10:00:02 mx smtpd[101]: 9f8e7d6c5b4a3921 mda delivery evpid=0b5e8a3c1d2e3f40 from=<sender@remote.test> to=<bob@lab.test> rcpt=<-> user=bob delay=1s result=Ok stat=Delivered",
		// relayed, authenticated: temp-failed, then delivered (the newer event= form)
		"Dec  5 10:01:00 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp connected address=198.51.100.7 host=laptop.lab.test",
		"Dec  5 10:01:00 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp authentication user=erin@lab.test result=ok",
		"Dec  5 10:01:01 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp message msgid=1c6f9b4d size=500 nrcpt=1 proto=ESMTP",
		"Dec  5 10:01:01 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp envelope evpid=1c6f9b4d00000001 from=<erin@lab.test> to=<deferonce-1@remote.test>",
		`Dec  5 10:01:02 mx smtpd[102]: 3b3b3c4d5e6f7083 mta delivery evpid=1c6f9b4d00000001 from=<erin@lab.test> to=<deferonce-1@remote.test> rcpt=<-> source="127.0.0.1" relay="192.0.2.1 (mx.remote.test)" delay=1s result="TempFail" stat="451 4.3.0 <deferonce-1@remote.test>: try again later"`,
		`Dec  5 10:01:12 mx smtpd[102]: 3b3b3c4d5e6f7084 mta event=delivery evpid=1c6f9b4d00000001 from=<erin@lab.test> to=<deferonce-1@remote.test> rcpt=<-> source="127.0.0.1" relay="192.0.2.1 (mx.remote.test)" delay=11s result="Ok" stat="250 2.0.0 Ok: queued as 4F3"`,
		// perm-failed, and the bounce (the server's own, from <>) delivered
		"Dec  5 10:02:00 mx smtpd[100]: 4a2b3c4d5e6f7085 smtp connected address=198.51.100.7 host=laptop.lab.test",
		"Dec  5 10:02:00 mx smtpd[100]: 4a2b3c4d5e6f7085 smtp authentication user=frank@lab.test result=ok",
		"Dec  5 10:02:01 mx smtpd[100]: 4a2b3c4d5e6f7085 smtp message msgid=2d7a0c5e size=500 nrcpt=1 proto=ESMTP",
		"Dec  5 10:02:01 mx smtpd[100]: 4a2b3c4d5e6f7085 smtp envelope evpid=2d7a0c5e00000001 from=<frank@lab.test> to=<nosuch-user@remote.test>",
		`Dec  5 10:02:02 mx smtpd[102]: 3b3b3c4d5e6f7086 mta delivery evpid=2d7a0c5e00000001 from=<frank@lab.test> to=<nosuch-user@remote.test> rcpt=<-> source="127.0.0.1" relay="192.0.2.1 (mx.remote.test)" delay=1s result="PermFail" stat="550 5.1.1 <nosuch-user@remote.test>: Recipient address rejected: User unknown"`,
		"Dec  5 10:02:03 mx smtpd[101]: 9f8e7d6c5b4a3922 mda delivery evpid=3e8b1d6f00000001 from=<> to=<frank@lab.test> rcpt=<-> user=frank delay=0s result=Ok stat=Delivered",
		// rejected at RCPT
		"Dec  5 10:03:00 mx smtpd[100]: 5a2b3c4d5e6f7087 smtp connected address=203.0.113.26 host=mail2.remote.test",
		`Dec  5 10:03:01 mx smtpd[100]: 5a2b3c4d5e6f7087 smtp failed-command command="rcpt TO:<nosuchuser@lab.test>" result="550 Invalid recipient: <nosuchuser@lab.test>"`,
		`Dec  5 10:03:02 mx smtpd[100]: 5a2b3c4d5e6f7087 smtp failed-command command="rcpt TO:<relaytest@elsewhere.test>" result="550 Invalid recipient: <relaytest@elsewhere.test>"`,
		`Dec  5 10:03:03 mx smtpd[100]: 5a2b3c4d5e6f7087 smtp failed-command command="STARTTLS" result="501 5.5.4 Invalid command arguments"`,
		// expired
		"Dec  5 10:04:00 mx smtpd[100]: 6a2b3c4d5e6f7088 smtp connected address=198.51.100.7 host=laptop.lab.test",
		"Dec  5 10:04:00 mx smtpd[100]: 6a2b3c4d5e6f7088 smtp authentication user=u58@lab.test result=ok",
		"Dec  5 10:04:01 mx smtpd[100]: 6a2b3c4d5e6f7088 smtp message msgid=4f9c2e70 size=500 nrcpt=1 proto=ESMTP",
		"Dec  5 10:04:01 mx smtpd[100]: 6a2b3c4d5e6f7088 smtp envelope evpid=4f9c2e7000000001 from=<u58@lab.test> to=<defer-forever@remote.test>",
		`Dec  5 10:04:02 mx smtpd[102]: 3b3b3c4d5e6f7089 mta delivery evpid=4f9c2e7000000001 from=<u58@lab.test> to=<defer-forever@remote.test> rcpt=<-> source="127.0.0.1" relay="192.0.2.1 (mx.remote.test)" delay=1s result="TempFail" stat="451 4.3.0 try again later"`,
		"Dec  5 10:05:02 mx smtpd[99]: relay: Expire for 4f9c2e7000000001: from=<u58@lab.test>, to=<defer-forever@remote.test>, rcpt=<->, delay=1m, stat=Envelope expired",
		// an alias of the table expanded to two members
		in,
		"Dec  5 10:06:01 mx smtpd[100]: 1a2b3c4d5e6f7081 smtp message msgid=5a0d3f81 size=712 nrcpt=1 proto=ESMTP",
		"Dec  5 10:06:01 mx smtpd[100]: 1a2b3c4d5e6f7081 smtp envelope evpid=5a0d3f8100000001 from=<sender@remote.test> to=<group@lab.test>",
		"Dec  5 10:06:02 mx smtpd[101]: 9f8e7d6c5b4a3923 mda delivery evpid=5a0d3f8100000002 from=<sender@remote.test> to=<alice@lab.test> rcpt=<group@lab.test> user=alice delay=1s result=Ok stat=Delivered",
		"Dec  5 10:06:02 mx smtpd[101]: 9f8e7d6c5b4a3923 mda delivery evpid=5a0d3f8100000003 from=<sender@remote.test> to=<bob@lab.test> rcpt=<group@lab.test> user=bob delay=1s result=Ok stat=Delivered",
	)
	l.want(
		"m1: bob@lab.test Delivered Inbound [Receive Deliver]",
		"m2: deferonce-1@remote.test Delivered Outbound [Receive Defer Deliver]",
		"m3: nosuch-user@remote.test Failed Outbound [Receive Fail]",
		"m4: frank@lab.test Delivered Internal [Deliver]",
		"m5: nosuchuser@lab.test Failed Inbound [Receive Fail]",
		"m6: relaytest@elsewhere.test FilteredAsSpam Outbound [Receive FilterAsSpam]",
		"m7: defer-forever@remote.test Failed Outbound [Receive Defer Fail]",
		"m8: alice@lab.test Delivered Inbound via group@lab.test [Receive Deliver]",
		"m8: bob@lab.test Delivered Inbound via group@lab.test [Receive Deliver]",
		"m8: group@lab.test Expanded Inbound [Receive Expand]",
	)
	for _, c := range []struct {
		typ       mailflow.EventType
		rcpt, dsn string
	}{
		{mailflow.EventDeliver, "bob@lab.test", "2.0.0"}, {mailflow.EventDefer, "deferonce-1@remote.test", "4.3.0"},
		{mailflow.EventFail, "nosuch-user@remote.test", "5.1.1"}, {mailflow.EventFail, "nosuchuser@lab.test", "5.1.1"},
		{mailflow.EventFilterAsSpam, "relaytest@elsewhere.test", "5.7.1"}, {mailflow.EventFail, "defer-forever@remote.test", "5.4.7"},
	} {
		if d := l.dsn(c.typ, c.rcpt); d != c.dsn {
			t.Errorf("%s %s: DSN %s, want %s", c.typ, c.rcpt, d, c.dsn)
		}
	}
	for _, e := range l.events {
		if e.Recipient == "bob@lab.test" && e.Type == mailflow.EventDeliver && e.MessageTraceID == l.src.TraceID("mx", "0b5e8a3c") &&
			(e.FromIP != "203.0.113.25" || e.Sender != "sender@remote.test" || e.Size != 712 || e.Source != "mda") {
			t.Errorf("delivery %+v", e)
		}
		if e.Recipient == "deferonce-1@remote.test" && e.Type == mailflow.EventDeliver && (e.Relay != "mx.remote.test[192.0.2.1]" || e.ToIP != "192.0.2.1") {
			t.Errorf("relayed %+v", e)
		}
	}
	if n := l.env.Stats.NotUnderstood; len(n) != 0 {
		t.Errorf("not understood %v", n)
	}
}

func TestRestoreAndEviction(t *testing.T) {
	first := []string{
		"Dec  5 10:01:00 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp connected address=198.51.100.7 host=laptop.lab.test",
		"Dec  5 10:01:00 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp authentication user=erin@lab.test result=ok",
		"Dec  5 10:01:01 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp message msgid=1c6f9b4d size=500 nrcpt=1 proto=ESMTP",
		"Dec  5 10:01:01 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp envelope evpid=1c6f9b4d00000001 from=<erin@lab.test> to=<x@remote.test>",
	}
	late := `Dec  5 10:01:12 mx smtpd[102]: 3b3b3c4d5e6f7084 mta delivery evpid=1c6f9b4d00000001 from=<erin@lab.test> to=<x@remote.test> rcpt=<-> source="127.0.0.1" relay="192.0.2.1 (mx.remote.test)" delay=11s result="Ok" stat="250 2.0.0 Ok"`
	a := newLab(t, testCfg)
	a.feed(first...)
	st, err := a.src.State()
	if err != nil {
		t.Fatal(err)
	}
	b := newLab(t, testCfg)
	if err := b.src.Restore(json.RawMessage(st)); err != nil {
		t.Fatal(err)
	}
	b.feed(late)
	if len(b.events) != 1 || b.events[0].MessageTraceID != a.src.TraceID("mx", "1c6f9b4d") || b.events[0].Direction != mailflow.DirectionOutbound || b.events[0].FromIP != "198.51.100.7" {
		t.Errorf("after restore %+v", b.events)
	}
	cfg := testCfg
	cfg.MaxInFlight, cfg.MaxEvicted = 1, 4
	c := newLab(t, cfg)
	c.feed(first...)
	c.feed("Dec  5 10:01:05 mx smtpd[100]: 2a2b3c4d5e6f7082 smtp message msgid=7c6f9b4d size=500 nrcpt=1 proto=ESMTP")
	if c.env.Stats.Evicted != 1 {
		t.Fatalf("evicted %d", c.env.Stats.Evicted)
	}
	c.feed(late)
	if e := c.events[len(c.events)-1]; e.MessageTraceID != a.src.TraceID("mx", "1c6f9b4d") || e.Direction != mailflow.DirectionOutbound {
		t.Errorf("after eviction %+v", e)
	}
}

func TestCommandReject(t *testing.T) {
	for _, c := range []struct {
		command, result, stage, addr, dsn string
		typ                               mailflow.EventType
	}{
		{"RCPT TO:<x@lab.test>", "550 Invalid recipient: <x@lab.test>", "RCPT", "x@lab.test", "5.1.1", mailflow.EventFail},
		{"RCPT TO:<x@else.test>", "550 Invalid recipient: relaying denied", "RCPT", "x@else.test", "5.7.1", mailflow.EventFilterAsSpam},
		{"rcpt TO:<x@else.test>", "550 Invalid recipient: <x@else.test>", "RCPT", "x@else.test", "5.7.1", mailflow.EventFilterAsSpam},
		{"RCPT TO: <sender@remote.test>", "550 Invalid recipient: <sender@remote.test>", "RCPT", "sender@remote.test", "5.7.1", mailflow.EventFilterAsSpam},
		{"RCPT TO:<x@lab.test>", "452 4.3.1 Insufficient system storage", "RCPT", "x@lab.test", "4.3.1", mailflow.EventDefer},
		{"MAIL FROM:<s@remote.test>", "550 5.7.1 Sender rejected", "MAIL", "s@remote.test", "5.7.1", mailflow.EventFilterAsSpam},
		{".", "554 5.7.1 Spam message rejected", "DATA", "", "5.7.1", mailflow.EventFilterAsSpam},
		// a greylisting filter's answer: the client retries (Pending)
		{".", "451 4.7.1 Greylisted, try again later", "DATA", "", "4.7.1", mailflow.EventDefer},
	} {
		stage, addr, dsn, typ, ok := commandReject(c.command, c.result, func(a string) bool { return !strings.HasSuffix(a, "@lab.test") })
		if !ok || stage != c.stage || addr != c.addr || dsn != c.dsn || typ != c.typ {
			t.Errorf("commandReject(%q, %q) = %s %s %s %s %v", c.command, c.result, stage, addr, dsn, typ, ok)
		}
	}
	if _, _, _, _, ok := commandReject("STARTTLS", "501 5.5.4 Invalid", nil); ok {
		t.Error("STARTTLS is no message's")
	}
}

func TestResultDSN(t *testing.T) {
	for _, c := range []struct {
		result, stat, dsn string
	}{
		{"Ok", "Delivered", "2.0.0"}, {"Ok", "250 2.0.0 Ok: queued", "2.0.0"}, {"TempFail", "451 4.3.0 try later", "4.3.0"},
		{"TempFail", "Network error on destination MXs", "4.0.0"}, {"PermFail", "550 no such user", "5.0.0"}, {"PermFail", "550 5.1.1 unknown", "5.1.1"},
		{"Loop", "Loop detected", "5.0.0"},
	} {
		typ, ok := resultType(c.result)
		if !ok {
			t.Fatalf("resultType(%q)", c.result)
		}
		if d := resultDSN(typ, c.stat); d != c.dsn {
			t.Errorf("resultDSN(%s, %q) = %s, want %s", typ, c.stat, d, c.dsn)
		}
	}
}
