package exim

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

// lab is a source fed as the engine feeds it: a line of Exim's own log
// file by its shape, any other as syslog; Prepare, then Consume unless it
// is ignored.
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
		var sl syslog.Line
		if !ParseMainlog(&sl, line, nil) {
			var err error
			if sl, err = syslog.ParseLine(line, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), nil); err != nil {
				l.t.Fatalf("%q: %v", line, err)
			}
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
		l.drain()
	}
}

func (l *lab) drain() {
	for _, e := range l.env.Out {
		if err := e.Validate(); err != nil {
			l.t.Errorf("invalid event %+v: %v", e, err)
		}
	}
	l.events = append(l.events, l.env.Out...)
	l.env.Out = nil
}

func (l *lab) flush() { l.src.Flush(); l.drain() }

// advance moves the clock and sweeps, as the engine does.
func (l *lab) advance(d time.Duration) {
	l.env.Now = l.env.Now.Add(d)
	l.src.Sweep()
	l.drain()
}

// rows describes the store's rows as "trace: rcpt Status Direction
// [types]" lines, one per (trace, recipient), sorted; message-level events
// go on every row of the trace (a placeholder row "-" when it has none).
func (l *lab) rows() []string {
	type key struct{ trace, rcpt string }
	byRow := map[key][]mailflow.Event{}
	msgLevel := map[string][]mailflow.Event{}
	dir := map[string]mailflow.Direction{}
	for _, e := range l.events {
		if e.Direction != "" {
			dir[e.MessageTraceID] = e.Direction
		}
		if e.Recipient == "" {
			msgLevel[e.MessageTraceID] = append(msgLevel[e.MessageTraceID], e)
			continue
		}
		k := key{e.MessageTraceID, e.Recipient}
		byRow[k] = append(byRow[k], e)
	}
	for tr := range msgLevel {
		has := false
		for k := range byRow {
			has = has || k.trace == tr
		}
		if !has {
			byRow[key{tr, "-"}] = nil
		}
	}
	names := map[string]string{}
	var traces []string
	for _, e := range l.events {
		if _, ok := names[e.MessageTraceID]; !ok {
			names[e.MessageTraceID] = fmt.Sprintf("m%d", len(names)+1)
			traces = append(traces, e.MessageTraceID)
		}
	}
	var out []string
	for k, evs := range byRow {
		all := append(append([]mailflow.Event{}, msgLevel[k.trace]...), evs...)
		sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
		var types []string
		for _, e := range all {
			types = append(types, string(e.Type))
		}
		st := mailflow.DeriveStatus(evs)
		if k.rcpt == "-" {
			st = mailflow.DeriveStatus(msgLevel[k.trace])
		}
		via := ""
		for _, e := range evs {
			if e.ExpandedFrom != "" {
				via = " via " + e.ExpandedFrom
			}
		}
		out = append(out, fmt.Sprintf("%s: %s %s %s%s [%s]", names[k.trace], k.rcpt, st, dir[k.trace], via, strings.Join(types, " ")))
	}
	sort.Strings(out)
	return out
}

func (l *lab) want(want ...string) {
	l.t.Helper()
	got := l.rows()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		l.t.Errorf("rows:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// event returns the only event of a type for a recipient.
func (l *lab) event(typ mailflow.EventType, rcpt string) mailflow.Event {
	l.t.Helper()
	var found []mailflow.Event
	for _, e := range l.events {
		if e.Type == typ && e.Recipient == rcpt {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		l.t.Fatalf("%d %s events for %q, want 1: %+v", len(found), typ, rcpt, found)
	}
	return found[0]
}

func TestInboundDelivered(t *testing.T) {
	l := newLab(t, testCfg)
	l.feed(
		`2026-12-05 10:00:00 [1200] SMTP connection from mail.remote.test (client.remote.test) [203.0.113.25]:41234 I=[127.0.0.1]:2525 (TCP/IP connection count = 1)`,
		`2026-12-05 10:00:00 [1200] 1vA0aa-0000Bc-Xy <= sender@remote.test H=mail.remote.test (client.remote.test) [203.0.113.25]:41234 I=[127.0.0.1]:2525 P=esmtp S=712 id=m1@remote.test T="Quarterly figures" for bob@lab.test`,
		`2026-12-05 10:00:00 [1200] SMTP connection from mail.remote.test (client.remote.test) [203.0.113.25]:41234 I=[127.0.0.1]:2525 closed by QUIT`,
		`2026-12-05 10:00:01 [1201] 1vA0aa-0000Bc-Xy => bob@lab.test R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]:24 C="250 2.0.0 <bob@lab.test> 4G0nBqgxMmm9GQAA Saved"`,
		`2026-12-05 10:00:01 [1201] 1vA0aa-0000Bc-Xy Completed`,
	)
	l.want("m1: bob@lab.test Delivered Inbound [Receive Deliver]")
	d := l.event(mailflow.EventDeliver, "bob@lab.test")
	if d.DSN != "2.0.0" || d.Subject != "Quarterly figures" || d.MessageID != "m1@remote.test" || d.Sender != "sender@remote.test" ||
		d.FromIP != "203.0.113.25" || d.Relay != "127.0.0.1[127.0.0.1]:24" || d.ToIP != "127.0.0.1" || d.Size != 712 || d.Source != "exim" ||
		d.MessageTraceID != l.src.TraceID("", "1vA0aa-0000Bc-Xy") || !d.Received.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("delivery %+v", d)
	}
	if r := l.event(mailflow.EventReceive, ""); r.ClientIP != "203.0.113.25" || r.ClientHostname != "mail.remote.test" {
		t.Errorf("receive %+v", r)
	}
	if st := l.env.Stats; st.Lines != 5 || st.Used != 3 || st.Ignored != 2 || st.Messages != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Both id formats in one stream (an Exim upgraded to 4.97 mid-file, its
// queue still holding messages of the old format), interleaved, by syslog
// and from Exim's own file: one trace per message.
func TestBothIDFormatsInOneStream(t *testing.T) {
	l := newLab(t, testCfg)
	l.feed(
		`Dec  5 10:00:00 mx exim[1200]: 1ajLoq-0001wC-Pk <= a@remote.test H=mx1.remote.test [203.0.113.1] P=esmtp S=100 id=old@remote.test`,
		`Dec  5 10:00:01 mx exim[1201]: 2026-12-05 10:00:01 1rR4oL-00000000GKS-2H5i <= b@remote.test H=mx2.remote.test [203.0.113.2] P=esmtp S=200 id=new@remote.test`,
		`Dec  5 10:00:02 mx exim[1202]: 1ajLoq-0001wC-Pk == bob@lab.test R=local_lmtp T=dovecot_lmtp defer (-53): LMTP error after RCPT TO:<bob@lab.test>: 451 4.3.0 Temporary failure`,
		`Dec  5 10:00:02 mx exim[1203]: 1rR4oL-00000000GKS-2H5i => carol@lab.test R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`Dec  5 10:00:02 mx exim[1203]: 1rR4oL-00000000GKS-2H5i Completed`,
		`2026-12-05 10:00:03 [1204] 1rR4oM-00000000GKT-0abc <= c@remote.test H=mx3.remote.test [203.0.113.3] P=esmtp S=300 id=file@remote.test`,
		`2026-12-05 10:00:04 [1205] 1ajLor-0001wD-Qa <= d@remote.test H=mx4.remote.test [203.0.113.4] P=esmtp S=400 id=file-old@remote.test`,
		`2026-12-05 10:00:05 [1206] 1rR4oM-00000000GKT-0abc => dave@lab.test R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:00:05 [1206] 1ajLor-0001wD-Qa => erin@lab.test R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`Dec  5 10:01:02 mx exim[1210]: 1ajLoq-0001wC-Pk => bob@lab.test R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`Dec  5 10:01:02 mx exim[1210]: 1ajLoq-0001wC-Pk Completed`,
	)
	l.want(
		"m1: bob@lab.test Delivered Inbound [Receive Defer Deliver]",
		"m2: carol@lab.test Delivered Inbound [Receive Deliver]",
		"m3: dave@lab.test Delivered Inbound [Receive Deliver]",
		"m4: erin@lab.test Delivered Inbound [Receive Deliver]",
	)
	ids := map[string]string{}
	for _, e := range l.events {
		ids[e.MessageID] = e.MessageTraceID
	}
	if len(ids) != 4 || ids["old@remote.test"] != l.src.TraceID("mx", "1ajLoq-0001wC-Pk") || ids["new@remote.test"] != l.src.TraceID("mx", "1rR4oL-00000000GKS-2H5i") ||
		ids["file@remote.test"] != l.src.TraceID("", "1rR4oM-00000000GKT-0abc") || ids["file-old@remote.test"] != l.src.TraceID("", "1ajLor-0001wD-Qa") {
		t.Errorf("trace IDs by Message-ID %v", ids)
	}
	if st := l.env.Stats; st.Messages != 4 {
		t.Errorf("messages %d, want 4", st.Messages)
	}
}

func TestAliases(t *testing.T) {
	l := newLab(t, testCfg)
	l.feed(
		`2026-12-05 10:00:00 1vA0aa-0000Bc-Xy <= sender@remote.test H=mail.remote.test [203.0.113.25] P=esmtp S=712 id=g@remote.test T="To the group"`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy => alice@lab.test <group@lab.test> R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy -> bob@lab.test <group@lab.test> R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy -> carol@lab.test <group@lab.test> R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy Completed`,
		`2026-12-05 10:00:02 1vA0ab-0000Bc-Yy <= sender@remote.test H=mail.remote.test [203.0.113.25] P=esmtp S=712 id=a@remote.test T="To the alias"`,
		`2026-12-05 10:00:03 1vA0ab-0000Bc-Yy => dave@lab.test <alias@lab.test> R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:00:03 1vA0ab-0000Bc-Yy Completed`,
		`2026-12-05 10:00:04 1vA0ac-0000Bc-Zz <= sender@remote.test H=mail.remote.test [203.0.113.25] P=esmtp S=712 id=l@remote.test`,
		`2026-12-05 10:00:05 1vA0ac-0000Bc-Zz => frank <frank@lab.test> R=localuser T=local_delivery`,
		`2026-12-05 10:00:05 1vA0ac-0000Bc-Zz Completed`,
	)
	l.want(
		"m1: alice@lab.test Delivered Inbound via group@lab.test [Receive Deliver]",
		"m1: bob@lab.test Delivered Inbound via group@lab.test [Receive Deliver]",
		"m1: carol@lab.test Delivered Inbound via group@lab.test [Receive Deliver]",
		"m1: group@lab.test Expanded Inbound [Receive Expand]",
		"m2: alias@lab.test Delivered Inbound [Receive Resolve Deliver]",
		"m3: frank@lab.test Delivered Inbound [Receive Deliver]",
	)
}

// An alias whose member is deferred (no Completed) is decided when its
// deliveries go quiet; a second member after that makes it a group. (A
// message from outside to an alias of the organisation is Inbound,
// wherever the alias forwards it.)
func TestAliasDecidedWhenQuiet(t *testing.T) {
	l := newLab(t, testCfg)
	l.feed(
		`2026-12-05 10:00:00 1vA0aa-0000Bc-Xy <= sender@remote.test H=mail.remote.test [203.0.113.25] P=esmtp S=712`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy == partner@remote.test <forward@lab.test> R=dnslookup T=remote_smtp defer (-44) H=mx.remote.test [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<partner@remote.test>: 451 4.3.0 try again later`,
	)
	l.want("m1: - GettingStatus  [Receive]")
	l.advance(time.Minute)
	l.want("m1: forward@lab.test Pending Inbound [Receive Resolve Defer]")
	l.feed(`2026-12-05 10:05:00 1vA0aa-0000Bc-Xy => partner@remote.test <forward@lab.test> R=dnslookup T=remote_smtp H=mx.remote.test [192.0.2.1] C="250 2.0.0 Ok"`)
	l.want("m1: forward@lab.test Delivered Inbound [Receive Resolve Defer Deliver]")
	l.feed(`2026-12-05 10:05:01 1vA0aa-0000Bc-Xy => other@remote.test <forward@lab.test> R=dnslookup T=remote_smtp H=mx.remote.test [192.0.2.1] C="250 2.0.0 Ok"`)
	l.want(
		"m1: forward@lab.test Expanded Inbound [Receive Resolve Defer Deliver Expand]",
		"m1: other@remote.test Delivered Inbound via forward@lab.test [Receive Deliver]",
	)
}

func TestOutbound(t *testing.T) {
	l := newLab(t, testCfg)
	l.feed(
		// deferred, then delivered
		`2026-12-05 10:00:00 1vA0aa-0000Bc-Xy <= erin@lab.test H=laptop.lab.test (laptop) [198.51.100.7]:50000 P=esmtpa A=dovecot_plain:erin@lab.test S=500 id=o1@lab.test T="Offer"`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy == deferonce-1@remote.test R=dnslookup T=remote_smtp defer (-44) H=mx.remote.test [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<deferonce-1@remote.test>: 451 4.3.0 <deferonce-1@remote.test>: lab remote: try again later`,
		`2026-12-05 10:00:11 1vA0aa-0000Bc-Xy => deferonce-1@remote.test R=dnslookup T=remote_smtp H=mx.remote.test [192.0.2.1]:25 C="250 2.0.0 Ok: queued"`,
		`2026-12-05 10:00:11 1vA0aa-0000Bc-Xy Completed`,
		// a hard bounce: the failure, the bounce message linked to it
		`2026-12-05 10:01:00 1vA0ab-0000Bc-Yy <= frank@lab.test H=laptop.lab.test (laptop) [198.51.100.7]:50001 P=esmtpa A=dovecot_plain:frank@lab.test S=500 id=o2@lab.test T="Lost"`,
		`2026-12-05 10:01:01 1vA0ab-0000Bc-Yy ** nosuch-user@remote.test R=dnslookup T=remote_smtp H=mx.remote.test [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<nosuch-user@remote.test>: 550 5.1.1 <nosuch-user@remote.test>: Recipient address rejected: User unknown`,
		`2026-12-05 10:01:01 1vA0ac-0000Bd-Zz <= <> R=1vA0ab-0000Bc-Yy U=Debian-exim P=local S=1890 T="Mail delivery failed: returning message to sender"`,
		`2026-12-05 10:01:01 1vA0ab-0000Bc-Yy Completed`,
		`2026-12-05 10:01:02 1vA0ac-0000Bd-Zz => frank@lab.test R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:01:02 1vA0ac-0000Bd-Zz Completed`,
		// expired
		`2026-12-05 10:02:00 1vA0ad-0000Be-Aa <= u58@lab.test H=laptop.lab.test [198.51.100.7] P=esmtpsa A=plain:u58@lab.test S=500`,
		`2026-12-05 10:02:01 1vA0ad-0000Be-Aa == defer-forever@remote.test R=dnslookup T=remote_smtp defer (-44) H=mx.remote.test [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<defer-forever@remote.test>: 451 4.3.0 try again later`,
		`2026-12-05 10:02:20 1vA0ad-0000Be-Aa ** defer-forever@remote.test: retry timeout exceeded`,
		`2026-12-05 10:02:20 1vA0ad-0000Be-Aa Completed`,
	)
	l.want(
		"m1: deferonce-1@remote.test Delivered Outbound [Receive Defer Deliver]",
		"m2: nosuch-user@remote.test Failed Outbound [Receive Notify Fail]",
		"m3: frank@lab.test Delivered Internal [Receive Deliver]",
		"m4: defer-forever@remote.test Failed Outbound [Receive Defer Fail]",
	)
	if f := l.event(mailflow.EventFail, "nosuch-user@remote.test"); f.DSN != "5.1.1" || f.SMTPResponse != "550 5.1.1 <nosuch-user@remote.test>: Recipient address rejected: User unknown" {
		t.Errorf("fail %+v", f)
	}
	n := l.event(mailflow.EventNotify, "")
	bounce := l.src.TraceID("", "1vA0ac-0000Bd-Zz")
	if n.MessageTraceID != l.src.TraceID("", "1vA0ab-0000Bc-Yy") || !strings.Contains(n.Detail, bounce) {
		t.Errorf("notify %+v (bounce %s)", n, bounce)
	}
	if d := l.event(mailflow.EventDeliver, "frank@lab.test"); d.Sender != "" || d.MessageTraceID != bounce {
		t.Errorf("bounce's delivery %+v", d)
	}
	if f := l.event(mailflow.EventFail, "defer-forever@remote.test"); f.DSN != "5.4.7" {
		t.Errorf("expired %+v", f)
	}
}

func TestRejects(t *testing.T) {
	l := newLab(t, testCfg)
	l.feed(
		`2026-12-05 10:00:00 H=mail.remote.test (client.remote.test) [203.0.113.25]:41234 I=[127.0.0.1]:2525 F=<sender@remote.test> rejected RCPT <nosuchuser@lab.test>: Unknown user`,
		`2026-12-05 10:00:01 H=mail.remote.test [203.0.113.25]:41235 F=<spammer@remote.test> rejected RCPT <relaytest@elsewhere.test>: relay not permitted`,
		`2026-12-05 10:00:02 H=mail.remote.test [203.0.113.25]:41236 F=<storage@remote.test> temporarily rejected RCPT <mallory@lab.test>: 4.3.1 Insufficient system storage`,
		`2026-12-05 10:00:03 H=mail.remote.test [203.0.113.25]:41237 F=<spammer@remote.test> rejected after DATA: 5.7.1 Gtube pattern`,
		`2026-12-05 10:00:04 H=mail.remote.test [203.0.113.25]:41238 rejected EHLO or HELO foo: syntactically invalid argument(s): foo_bar`,
	)
	l.want(
		"m1: nosuchuser@lab.test Failed Inbound [Receive Fail]",
		"m2: relaytest@elsewhere.test FilteredAsSpam Outbound [Receive FilterAsSpam]",
		"m3: mallory@lab.test Pending Inbound [Receive Defer]",
		"m4: - FilteredAsSpam  [Receive FilterAsSpam]",
	)
	for rcpt, dsn := range map[string]string{"nosuchuser@lab.test": "5.1.1", "relaytest@elsewhere.test": "5.7.1", "mallory@lab.test": "4.3.1"} {
		for _, e := range l.events {
			if e.Recipient == rcpt && e.DSN != dsn {
				t.Errorf("%s: DSN %q, want %s", rcpt, e.DSN, dsn)
			}
		}
	}
	if st := l.env.Stats; st.Used != 4 || st.Ignored != 1 || st.Messages != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestFrozenAndThawed(t *testing.T) {
	l := newLab(t, testCfg)
	l.feed(
		`2026-12-05 10:00:00 1vA0aa-0000Bc-Xy <= sender@remote.test H=mail.remote.test [203.0.113.25] P=esmtp S=712`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy == bob@lab.test R=local_lmtp T=dovecot_lmtp defer (-53): LMTP error after RCPT TO:<bob@lab.test>: 451 4.3.0 Temporary failure`,
		`2026-12-05 10:00:02 1vA0aa-0000Bc-Xy Frozen`,
	)
	l.want("m1: bob@lab.test Quarantined Inbound [Receive Defer Quarantine]")
	l.feed(`2026-12-05 10:10:00 1vA0aa-0000Bc-Xy unfrozen by root`)
	l.want("m1: bob@lab.test Pending Inbound [Receive Defer Quarantine Defer]")
	l.feed(`2026-12-05 10:10:01 1vA0aa-0000Bc-Xy => bob@lab.test R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:10:01 1vA0aa-0000Bc-Xy Completed`)
	l.want("m1: bob@lab.test Delivered Inbound [Receive Defer Quarantine Defer Deliver]")
}

// A restart mid-message: the state carries the sender, the client and an
// alias's held members; the restarted source ends the message as the
// first would have.
func TestStateRestore(t *testing.T) {
	first := []string{
		`2026-12-05 10:00:00 1vA0aa-0000Bc-Xy <= ceo@lab.test H=mail.remote.test [203.0.113.25] P=esmtp S=712 id=r@remote.test`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy => alice@lab.test <group@lab.test> R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
	}
	rest := []string{
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy -> bob@lab.test <group@lab.test> R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy Completed`,
	}
	whole := newLab(t, testCfg)
	whole.feed(append(first, rest...)...)

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
	b.env.Now = a.env.Now
	b.events = a.events
	b.feed(rest...)
	if got, want := b.rows(), whole.rows(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("restored:\n  %s\nwhole:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	whole.want(
		"m1: alice@lab.test Delivered Inbound via group@lab.test [Receive Deliver]",
		"m1: bob@lab.test Delivered Inbound via group@lab.test [Receive Deliver]",
		"m1: group@lab.test Expanded Inbound [Receive Expand]",
	)
	if err := b.src.Restore(json.RawMessage(st)); err == nil {
		t.Error("Restore on a source that has read lines")
	}
	if err := newLab(t, testCfg).src.Restore(json.RawMessage(`{"messages":[{}]}`)); err == nil {
		t.Error("Restore of a message without an id")
	}
}

// Past the cap on messages in flight, the least recently active message is
// evicted; a late line of it joins the same trace, its direction kept.
func TestEviction(t *testing.T) {
	cfg := testCfg
	cfg.MaxInFlight, cfg.MaxEvicted = 2, 10
	l := newLab(t, cfg)
	l.feed(`2026-12-05 10:00:00 1vA0aa-0000Bc-Xy <= erin@lab.test H=laptop [198.51.100.7] P=esmtpa A=plain:erin@lab.test S=1`,
		`2026-12-05 10:00:01 1vA0aa-0000Bc-Xy == x@remote.test R=dnslookup T=remote_smtp defer (-44): Connection refused`)
	for i := range 3 {
		l.feed(fmt.Sprintf(`2026-12-05 10:00:0%d 1vA0b%d-0000Bc-Xy <= s@remote.test H=m [203.0.113.9] P=esmtp S=1`, i+2, i))
	}
	if l.env.Stats.Evicted != 2 || len(l.src.msgs) != 2 {
		t.Fatalf("evicted %d, in flight %d", l.env.Stats.Evicted, len(l.src.msgs))
	}
	if l.src.TraceID("", "1vA0aa-0000Bc-Xy") == "" {
		t.Error("an evicted message's trace ID forgotten")
	}
	l.feed(`2026-12-05 10:01:00 1vA0aa-0000Bc-Xy => x@remote.test R=dnslookup T=remote_smtp H=mx [192.0.2.1]`)
	d := l.event(mailflow.EventDeliver, "x@remote.test")
	if d.MessageTraceID != traceIDFor("", "1vA0aa-0000Bc-Xy") || d.Direction != mailflow.DirectionOutbound {
		t.Errorf("late delivery %+v", d)
	}
}
