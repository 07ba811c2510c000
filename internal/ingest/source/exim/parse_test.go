package exim

import (
	"reflect"
	"testing"
)

// Lines in the formats of the Exim specification's chapter "Log files"
// (its examples, and Exim 4.96's with log_selector +subject +pid
// +incoming_port +received_recipients), and Exim 4.97's longer ids.
func TestParse(t *testing.T) {
	cases := []struct {
		name string
		line string
		want Record
	}{
		{"arrival, the spec's example", "16ZCW1-0005MB-00 <= kll@dwarf.fict.example H=mail.dwarf.example [192.168.2.10] U=exim P=smtp S=5678 id=incoming-id@dwarf.fict.example",
			Record{Kind: KindArrival, ID: "16ZCW1-0005MB-00", Sender: "kll@dwarf.fict.example", HasSender: true, ClientName: "mail.dwarf.example", ClientIP: "192.168.2.10",
				User: "exim", Protocol: "smtp", Size: 5678, MessageID: "incoming-id@dwarf.fict.example"}},
		{"arrival with HELO, port, subject, recipients and a timestamp and pid",
			`2026-12-05 10:00:00 [1201] 1vA0aa-0000Bc-Xy <= sender@remote.test H=mail.remote.test (client.remote.test) [203.0.113.25]:41234 I=[127.0.0.1]:2525 P=esmtp S=712 id=m1@lab.test T="Quarterly \"Q4\" figures" for bob@lab.test carol@lab.test`,
			Record{Kind: KindArrival, ID: "1vA0aa-0000Bc-Xy", Sender: "sender@remote.test", HasSender: true, ClientName: "mail.remote.test", HELO: "client.remote.test",
				ClientIP: "203.0.113.25", Protocol: "esmtp", Size: 712, MessageID: "m1@lab.test", Subject: `Quarterly "Q4" figures`, Recipients: []string{"bob@lab.test", "carol@lab.test"}}},
		{"arrival of 4.97's long id, authenticated, no name, octal-escaped UTF-8 subject",
			`1rR4oL-00000000GKS-2H5i <= erin@lab.test H=(laptop) [198.51.100.7]:50000 P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=dovecot_plain:erin@lab.test S=1024 id=x@y T="\344\274\232\350\255\260"`,
			Record{Kind: KindArrival, ID: "1rR4oL-00000000GKS-2H5i", Sender: "erin@lab.test", HasSender: true, HELO: "laptop", ClientIP: "198.51.100.7",
				Protocol: "esmtpsa", Auth: "dovecot_plain:erin@lab.test", Size: 1024, MessageID: "x@y", Subject: "会議"}},
		{"bounce, the original in R=", "1vA0ac-0000Bd-Zz <= <> R=1vA0ab-0000Bc-Yy U=Debian-exim P=local S=1890",
			Record{Kind: KindArrival, ID: "1vA0ac-0000Bd-Zz", HasSender: true, BounceOf: "1vA0ab-0000Bc-Yy", User: "Debian-exim", Protocol: "local", Size: 1890}},
		{"local delivery, the address a local part", "16ZCW1-0005MB-00 => marv <marv@hitch.fict.example> R=localuser T=local_delivery",
			Record{Kind: KindDelivery, ID: "16ZCW1-0005MB-00", Addr: "marv", Parent: "marv@hitch.fict.example", Router: "localuser", Transport: "local_delivery"}},
		{"remote delivery with confirmation", `16ZCW1-0005MB-00 => monk@holistic.fict.example R=dnslookup T=remote_smtp H=holistic.fict.example [192.168.234.234]:25 X=TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256 CV=yes C="250 2.0.0 Ok: queued as 4F3"`,
			Record{Kind: KindDelivery, ID: "16ZCW1-0005MB-00", Addr: "monk@holistic.fict.example", Router: "dnslookup", Transport: "remote_smtp",
				Host: "holistic.fict.example", HostIP: "192.168.234.234", HostPort: 25, Confirmation: "250 2.0.0 Ok: queued as 4F3"}},
		{"another address of the same delivery, from an alias", "1vA0aa-0000Bc-Xy -> bob@lab.test <group@lab.test> R=lmtp_user T=dovecot_lmtp H=127.0.0.1 [127.0.0.1]",
			Record{Kind: KindDelivery, ID: "1vA0aa-0000Bc-Xy", Addr: "bob@lab.test", Parent: "group@lab.test", Router: "lmtp_user", Transport: "dovecot_lmtp", Host: "127.0.0.1", HostIP: "127.0.0.1"}},
		{"failure, unrouteable", "16ZCW1-0005MB-00 ** jim@trek99.example: Unrouteable address",
			Record{Kind: KindFail, ID: "16ZCW1-0005MB-00", Addr: "jim@trek99.example", Reason: "Unrouteable address"}},
		{"failure with the remote's reply", "1vA0ab-0000Bc-Yy ** nosuch@remote.test R=dnslookup T=remote_smtp H=mx.remote.test [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<nosuch@remote.test>: 550 5.1.1 <nosuch@remote.test>: Recipient address rejected: User unknown",
			Record{Kind: KindFail, ID: "1vA0ab-0000Bc-Yy", Addr: "nosuch@remote.test", Router: "dnslookup", Transport: "remote_smtp", Host: "mx.remote.test", HostIP: "192.0.2.1",
				Reason: "SMTP error from remote mail server after RCPT TO:<nosuch@remote.test>: 550 5.1.1 <nosuch@remote.test>: Recipient address rejected: User unknown"}},
		{"failure of an alias's member, with its parent", "1vA0ab-0000Bc-Yy ** partner@remote.test <forward@lab.test>: retry timeout exceeded",
			Record{Kind: KindFail, ID: "1vA0ab-0000Bc-Yy", Addr: "partner@remote.test", Parent: "forward@lab.test", Reason: "retry timeout exceeded"}},
		{"deferral, the spec's example", "16ZCW1-0005MB-00 == marvin@fict.example R=dnslookup T=remote_smtp defer (-44): SMTP error from remote mail server after RCPT TO:<marvin@fict.example>: host mail.fict.example [192.168.2.1]: 451 Temporary error",
			Record{Kind: KindDefer, ID: "16ZCW1-0005MB-00", Addr: "marvin@fict.example", Router: "dnslookup", Transport: "remote_smtp",
				Reason: "SMTP error from remote mail server after RCPT TO:<marvin@fict.example>: host mail.fict.example [192.168.2.1]: 451 Temporary error"}},
		{"completed", "2026-12-05 10:00:02.123 +0100 [77] 16ZCW1-0005MB-00 Completed QT=2s", Record{Kind: KindCompleted, ID: "16ZCW1-0005MB-00"}},
		{"frozen", "16ZCW1-0005MB-00 Frozen (delivery error message)", Record{Kind: KindFrozen, ID: "16ZCW1-0005MB-00", Reason: "(delivery error message)"}},
		{"unfrozen", "16ZCW1-0005MB-00 unfrozen by root", Record{Kind: KindThawed, ID: "16ZCW1-0005MB-00", Reason: "unfrozen by root"}},
		{"removed", "16ZCW1-0005MB-00 removed by root", Record{Kind: KindRemoved, ID: "16ZCW1-0005MB-00", Reason: "removed by root"}},
		{"reject at RCPT, no id", "H=mail.remote.test (client.remote.test) [203.0.113.25]:41234 I=[127.0.0.1]:2525 F=<sender@remote.test> rejected RCPT <nosuchuser@lab.test>: Unknown user",
			Record{Kind: KindReject, Stage: "RCPT", Addr: "nosuchuser@lab.test", Sender: "sender@remote.test", HasSender: true, ClientName: "mail.remote.test",
				HELO: "client.remote.test", ClientIP: "203.0.113.25", Reason: "Unknown user"}},
		{"temporary reject at RCPT, the null sender", "H=(helo.example) [192.0.2.9] F=<> temporarily rejected RCPT <mallory@lab.test>: 4.3.1 Insufficient system storage",
			Record{Kind: KindReject, Stage: "RCPT", Temporary: true, Addr: "mallory@lab.test", HasSender: true, HELO: "helo.example", ClientIP: "192.0.2.9", Reason: "4.3.1 Insufficient system storage"}},
		{"reject after DATA", "H=[203.0.113.25]:41000 F=<spammer@remote.test> rejected after DATA: This message was classified as SPAM",
			Record{Kind: KindReject, Stage: "DATA", Sender: "spammer@remote.test", HasSender: true, ClientIP: "203.0.113.25", Reason: "This message was classified as SPAM"}},
		{"reject after DATA, with an id", "1vA0ad-0000Be-Aa H=[203.0.113.25] F=<spammer@remote.test> rejected after DATA: spam",
			Record{Kind: KindReject, ID: "1vA0ad-0000Be-Aa", Stage: "DATA", Sender: "spammer@remote.test", HasSender: true, ClientIP: "203.0.113.25", Reason: "spam"}},
		// the mail lab's Exim 4.96, its spam ACL refusing on rspamd's verdicts
		// (log_selector +subject +pid +incoming_port: no recipient, whatever
		// the selector; the Message-ID neither)
		{"the lab: GTUBE refused after DATA", "2026-12-06 09:02:58 [6588] 1xa894-0001iG-1k H=(mail.remote.test) [203.0.113.25]:41234 F=<spammer@remote.test> rejected after DATA: 554 5.7.1 Spam message rejected",
			Record{Kind: KindReject, ID: "1xa894-0001iG-1k", Stage: "DATA", Sender: "spammer@remote.test", HasSender: true, HELO: "mail.remote.test", ClientIP: "203.0.113.25",
				Reason: "554 5.7.1 Spam message rejected"}},
		{"the lab: rspamd's soft reject deferred after DATA", "2026-12-06 09:02:58 [6586] 1xa894-0001iE-1k H=(mail.remote.test) [203.0.113.25]:41234 F=<softreject@remote.test> temporarily rejected after DATA: 451 4.7.1 Try again later",
			Record{Kind: KindReject, ID: "1xa894-0001iE-1k", Stage: "DATA", Temporary: true, Sender: "softreject@remote.test", HasSender: true, HELO: "mail.remote.test", ClientIP: "203.0.113.25",
				Reason: "451 4.7.1 Try again later"}},
		{"the lab: the spam ACL's warn line (rspamd's own line says more): nothing", "2026-12-06 09:02:58 [6588] 1xa894-0001iG-1k H=(mail.remote.test) [203.0.113.25]:41234 Warning: rspamd: reject, score 15.0",
			Record{ID: "1xa894-0001iG-1k"}},
		{"a connection: nothing", "SMTP connection from mail.remote.test [203.0.113.25]:41234 I=[127.0.0.1]:2525 (TCP/IP connection count = 1)", Record{}},
		{"a queue run: nothing", "Start queue run: pid=1234", Record{}},
		{"DKIM: nothing", "1vA0aa-0000Bc-Xy DKIM: d=remote.test s=sel c=relaxed/relaxed a=rsa-sha256 b=2048 [verification succeeded]", Record{ID: "1vA0aa-0000Bc-Xy"}},
		{"a flag without an address", "1vA0aa-0000Bc-Xy ** ", Record{Kind: KindUnknown, ID: "1vA0aa-0000Bc-Xy"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.line); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.line, got, tc.want)
			}
		})
	}
}

func TestIsID(t *testing.T) {
	for s, want := range map[string]bool{
		"1ajLoq-0001wC-Pk": true, "1rR4oL-00000000GKS-2H5i": true, "16ZCW1-0005MB-00": true,
		"1ajLoq-0001wC-P": false, "1ajLoq_0001wC-Pk": false, "1rR4oL-0000000GKS-2H5ii": false, "ABCDE12345": false, "1ajLoq-0001wC-P!": false,
	} {
		if isID(s) != want {
			t.Errorf("isID(%q) = %v", s, !want)
		}
	}
}
