package ingest

import (
	"strings"
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// A mixed stream, as one collector forwards it: Postfix, Exim (by syslog
// and from its own log file, both id formats), OpenSMTPD, Dovecot and
// rspamd lines from different hosts, and lines no source understands.
// Each line reaches its source with no configuration (by syslog program,
// Exim's own file by its shape); what no source understands is counted
// by reason and stored nowhere.
func TestMixedStreamDetection(t *testing.T) {
	lines := []string{
		// Postfix on mx1
		"Dec  5 10:00:00 mx1 postfix/smtpd[11]: connect from a.remote.test[203.0.113.1]",
		"Dec  5 10:00:00 mx1 postfix/smtpd[11]: 3F2A81C0D2: client=a.remote.test[203.0.113.1]",
		"Dec  5 10:00:00 mx1 postfix/cleanup[12]: 3F2A81C0D2: message-id=<pf@remote.test>",
		"Dec  5 10:00:00 mx1 postfix/qmgr[13]: 3F2A81C0D2: from=<a@remote.test>, size=100, nrcpt=1 (queue active)",
		// Exim on mx2, by syslog, old id format
		"Dec  5 10:00:01 mx2 exim[21]: 1ajLoq-0001wC-Pk <= b@remote.test H=b.remote.test [203.0.113.2] P=esmtp S=200 id=ex-old@remote.test",
		// Dovecot and rspamd on mx1
		"Dec  5 10:00:01 mx1 dovecot: lmtp(alice@example.com)<31><x>: msgid=<pf@remote.test>: saved mail to INBOX",
		"Dec  5 10:00:01 mx1 rspamd[41]: <a1b2c3>; task; rspamd_task_write_log: id: <pf@remote.test>, qid: <3F2A81C0D2>, ip: 203.0.113.1, from: <a@remote.test>, (default: F (no action): [1.20/15.00] [])",
		"Dec  5 10:00:01 mx1 postfix/lmtp[14]: 3F2A81C0D2: to=<alice@example.com>, relay=mx1[private/dovecot-lmtp], delay=1, dsn=2.0.0, status=sent (250 2.0.0 <alice@example.com> Saved)",
		"Dec  5 10:00:01 mx1 postfix/qmgr[13]: 3F2A81C0D2: removed",
		// OpenSMTPD on mx3
		"Dec  5 10:00:02 mx3 smtpd[31]: 1a2b3c4d5e6f7081 smtp connected address=203.0.113.3 host=c.remote.test",
		"Dec  5 10:00:02 mx3 smtpd[31]: 1a2b3c4d5e6f7081 smtp message msgid=0b5e8a3c size=300 nrcpt=1 proto=ESMTP",
		"Dec  5 10:00:02 mx3 smtpd[31]: 1a2b3c4d5e6f7081 smtp envelope evpid=0b5e8a3c1d2e3f40 from=<c@remote.test> to=<carol@example.com>",
		"Dec  5 10:00:03 mx3 smtpd[32]: 9f8e7d6c5b4a3921 mda delivery evpid=0b5e8a3c1d2e3f40 from=<c@remote.test> to=<carol@example.com> rcpt=<-> user=carol delay=1s result=Ok stat=Delivered",
		// Exim's own log file (no syslog header), the 4.97 id format
		"2024-12-05 10:00:03 [51] 1rR4oL-00000000GKS-2H5i <= d@remote.test H=d.remote.test [203.0.113.4] P=esmtp S=400 id=ex-new@remote.test",
		"2024-12-05 10:00:04 [52] 1rR4oL-00000000GKS-2H5i => dave@example.com R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]",
		"2024-12-05 10:00:04 [52] 1rR4oL-00000000GKS-2H5i Completed",
		"Dec  5 10:00:04 mx2 exim[22]: 1ajLoq-0001wC-Pk => bob@example.com R=local_lmtp T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]",
		// what no source understands
		"Dec  5 10:00:05 mx1 CRON[61]: (root) CMD (run-parts /etc/cron.hourly)",
		"Dec  5 10:00:05 mx2 kernel: [12345.678] eth0: link up",
		"this is not a log line",
		"",
	}
	s, c := run(t, testCfg, lines...)
	st := c.Stats()

	// one trace per message, each from its own source, on its own host
	for _, tc := range []struct {
		host, id, rcpt, source string
	}{
		{"mx1", "3F2A81C0D2", "alice@example.com", "lmtp"},
		{"mx2", "1ajLoq-0001wC-Pk", "bob@example.com", "exim"},
		{"mx3", "0b5e8a3c", "carol@example.com", "mda"},
		{"", "1rR4oL-00000000GKS-2H5i", "dave@example.com", "exim"},
	} {
		tr := c.TraceID(tc.host, tc.id)
		if tr == "" {
			t.Errorf("%s %s: no trace", tc.host, tc.id)
			continue
		}
		if r := rowOf(t, s, tr, tc.rcpt); r.Status != mailflow.StatusDelivered {
			t.Errorf("%s %s: row %+v", tc.host, tc.id, r)
		}
		for _, e := range s.traces[tr] {
			if e.Type == mailflow.EventDeliver && (e.Source != tc.source || e.ServerHostname != tc.host || e.Direction != mailflow.DirectionInbound) {
				t.Errorf("%s %s: delivery %+v", tc.host, tc.id, e)
			}
		}
	}
	// what no source understands is counted by reason, and stored nowhere
	if st.NotUnderstood[ReasonNotPostfix] != 2 || st.NotUnderstood[ReasonNotSyslog] != 1 || st.NotUnderstood[ReasonEmpty] != 1 {
		t.Errorf("not understood %v", st.NotUnderstood)
	}
	for reason := range st.NotUnderstood {
		if strings.Contains(reason, "unknown") {
			t.Errorf("a source did not understand one of its own lines: %v", st.NotUnderstood)
		}
	}
	var skipped int64
	for _, n := range st.NotUnderstood {
		skipped += n
	}
	if st.Lines != int64(len(lines)) || st.Used+st.Ignored+skipped != st.Lines {
		t.Errorf("lines %d: used %d + ignored %d + not understood %d", st.Lines, st.Used, st.Ignored, skipped)
	}
	for id, evs := range s.traces {
		for _, e := range evs {
			for _, bad := range []string{"CRON", "kernel", "not a log line"} {
				if strings.Contains(e.Detail, bad) {
					t.Errorf("trace %s: an event of a line no source understands: %+v", id, e)
				}
			}
		}
	}
}
