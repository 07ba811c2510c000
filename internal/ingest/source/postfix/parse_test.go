package postfix

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// TestParseMessageGrokFixtures checks ParseMessage against the expected
// fields of postfix-grok-patterns' fixtures (191 real message bodies; the
// daemon is in the file name).
func TestParseMessageGrokFixtures(t *testing.T) {
	needMaildata(t)
	files, err := filepath.Glob(filepath.Join(maildata, "postfix-grok-patterns/test/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	daemonRe := regexp.MustCompile(`^([a-z_]+?)_\d+\.yaml$`)
	kinds := map[Kind]int{}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx struct {
			Data    string            `json:"data"`
			Results map[string]string `json:"results"`
		}
		if err := yaml.Unmarshal(b, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m := daemonRe.FindStringSubmatch(filepath.Base(f))
		if m == nil {
			continue
		}
		daemon := m[1]
		r := ParseMessage(daemon, fx.Data)
		kinds[r.Kind]++
		want := fx.Results
		name := filepath.Base(f)
		check := func(field, got, exp string) {
			checked++
			if got != exp {
				t.Errorf("%s: %s = %q, want %q (data %q)", name, field, got, exp, fx.Data)
			}
		}
		if q, ok := want["postfix_queueid"]; ok && r.Kind != KindIgnored {
			if q == "NOQUEUE" {
				q = ""
			}
			check("queue id", r.QueueID, q)
		}
		switch r.Kind {
		case KindDelivery:
			if st, ok := want["postfix_status"]; ok {
				check("status", r.Status, st)
			}
			if resp, ok := want["postfix_smtp_response"]; ok {
				check("response", r.Response, resp)
			}
			if ip := validIP(want["postfix_relay_ip"]); ip != "" {
				check("relay ip", r.RelayIP, ip)
			}
			if p, ok := want["postfix_relay_port"]; ok {
				check("relay port", strconv.Itoa(r.RelayPort), p)
			}
			kv := parseKV(want["postfix_keyvalue_data"])
			to, _ := addr(&kv, "to")
			check("to", r.To, to)
			if o, ok := addr(&kv, "orig_to"); ok {
				check("orig_to", r.OrigTo, o)
			}
		case KindClient:
			if ip, ok := want["postfix_client_ip"]; ok {
				check("client ip", r.ClientIP, validIP(ip))
				check("client name", r.ClientName, want["postfix_client_hostname"])
			}
		case KindReject, KindAction:
			if ip, ok := want["postfix_client_ip"]; ok {
				check("client ip", r.ClientIP, validIP(ip))
			}
			kv := parseKV(want["postfix_keyvalue_data"])
			if to, ok := addr(&kv, "to"); ok {
				check("to", r.To, to)
			}
			if from, ok := addr(&kv, "from"); ok {
				check("from", r.From, from)
			}
		case KindMessageID:
			check("message-id", mailflow.NormalizeMessageID(r.MessageID), want["postfix_message-id"])
		case KindNotify:
			check("notice queue id", r.NewID, want["postfix_bounce_queueid"])
		case KindQueued, KindPickup:
			kv := parseKV(want["postfix_keyvalue_data"])
			from, _ := addr(&kv, "from")
			check("from", r.From, from)
		case KindUnknown:
			// only lines with a queue id that we do not know are unknown
			if r.QueueID == "" {
				t.Errorf("%s: unknown without a queue id", name)
			}
			t.Logf("%s: not understood: %q", name, fx.Data)
		}
	}
	t.Logf("%d fixtures, %d fields checked; kinds %v", len(files), checked, kinds)
}

func TestParseMessageLines(t *testing.T) {
	for _, tc := range []struct {
		daemon, msg string
		want        Record
	}{
		{"smtpd", "4PbC4x469Jz3tBr: client=mail.nistoresio.co.cz[185.31.160.120]",
			Record{Kind: KindClient, QueueID: "4PbC4x469Jz3tBr", ClientName: "mail.nistoresio.co.cz", ClientIP: "185.31.160.120"}},
		{"smtpd", "B42E77AB32: client=42-64-53-170.subs.proxad.net[42.64.53.170], sasl_method=PLAIN, sasl_username=user42@smtp01.example.com",
			Record{Kind: KindClient, QueueID: "B42E77AB32", ClientName: "42-64-53-170.subs.proxad.net", ClientIP: "42.64.53.170", SASLUsername: "user42@smtp01.example.com"}},
		{"smtpd", "1C6B541C5D: client=localhost.localdomain[127.0.0.1], orig_client=test.localdomain[192.168.22.40]",
			Record{Kind: KindClient, QueueID: "1C6B541C5D", ClientName: "localhost.localdomain", ClientIP: "127.0.0.1", OrigClientName: "test.localdomain", OrigClientIP: "192.168.22.40"}},
		{"smtpd", "DEF2520A69: client=pmghost.mydomain.tld[192.168.1.001]",
			Record{Kind: KindClient, QueueID: "DEF2520A69", ClientName: "pmghost.mydomain.tld"}},
		{"pickup", "4PcV4H6fDlz3tG5: uid=2000 from=<bounce-no-reply@nebenan.de>",
			Record{Kind: KindPickup, QueueID: "4PcV4H6fDlz3tG5", UID: "2000", From: "bounce-no-reply@nebenan.de", HasFrom: true}},
		{"qmgr", "E2487636D9: from=<>, size=3628, nrcpt=1 (queue active)",
			Record{Kind: KindQueued, QueueID: "E2487636D9", HasFrom: true, Size: 3628, NRcpt: 1}},
		{"qmgr", "3D74ADB7400B: removed", Record{Kind: KindRemoved, QueueID: "3D74ADB7400B"}},
		{"bounce", "B8010636D6: sender non-delivery notification: E2487636D9",
			Record{Kind: KindNotify, QueueID: "B8010636D6", NotifyKind: "sender non-delivery notification", NewID: "E2487636D9"}},
		{"smtp", "4PbC4x469Jz3tBr: to=<user01.test@uhu-banane.net>, orig_to=<frank@brehm-berlin.de>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.4, delays=0.29/0.02/0.01/2.1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3)",
			Record{Kind: KindDelivery, QueueID: "4PbC4x469Jz3tBr", To: "user01.test@uhu-banane.net", OrigTo: "frank@brehm-berlin.de",
				Relay: "127.0.0.1[127.0.0.1]:10024", RelayIP: "127.0.0.1", RelayPort: 10024, DSN: "2.0.0", Status: "sent",
				Response: "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3", NewID: "4PbC4z6W5Qz3tG3"}},
		{"lmtp", "21BCE3807B6: to=<pmgtest@localhost>, relay=127.0.0.1[127.0.0.1]:10023, delay=0.09, delays=0.02/0.01/0.02/0.04, dsn=2.5.0, status=sent (250 2.5.0 OK (3807BE5DFA39502AEF1))",
			Record{Kind: KindDelivery, QueueID: "21BCE3807B6", To: "pmgtest@localhost", Relay: "127.0.0.1[127.0.0.1]:10023", RelayIP: "127.0.0.1", RelayPort: 10023,
				DSN: "2.5.0", Status: "sent", Response: "250 2.5.0 OK (3807BE5DFA39502AEF1)", FilterID: "3807BE5DFA39502AEF1"}},
		{"pipe", "4PbC4z6W5Qz3tG3: to=<user01.test@uhu-banane.net>, relay=dovecot, delay=0.12, delays=0.01/0.01/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot service)",
			Record{Kind: KindDelivery, QueueID: "4PbC4z6W5Qz3tG3", To: "user01.test@uhu-banane.net", Relay: "dovecot", DSN: "2.0.0", Status: "sent", Response: "delivered via dovecot service"}},
		{"postscreen", "NOQUEUE: reject: RCPT from [10.0.0.1]:34453: 550 5.7.1 Service unavailable; client [10.0.0.1] blocked using zen.spamhaus.org; from=<rbl_reject_test@localhost.localdomain>, to=<test@reject.localhost.localdomain>, proto=ESMTP, helo=<localhost.localdomain>",
			Record{Kind: KindReject, Action: "reject", Stage: "RCPT", ClientIP: "10.0.0.1", From: "rbl_reject_test@localhost.localdomain", HasFrom: true, To: "test@reject.localhost.localdomain",
				Reason: "550 5.7.1 Service unavailable; client [10.0.0.1] blocked using zen.spamhaus.org", DSN: "5.7.1"}},
		{"smtpd", "NOQUEUE: reject: RCPT from unknown[192.168.1.1]: 454 4.7.1 <spammer@domain.tld>: Relay access denied; from=<spammer@domain.tld> to=<spammer@domain.tld> proto=ESMTP helo=<WIN-CLJ1B0GQ6JP>",
			Record{Kind: KindReject, Action: "reject", Stage: "RCPT", ClientName: "unknown", ClientIP: "192.168.1.1", From: "spammer@domain.tld", HasFrom: true, To: "spammer@domain.tld",
				Reason: "454 4.7.1 <spammer@domain.tld>: Relay access denied", DSN: "4.7.1"}},
		{"cleanup", "D6DDA23B0F: milter-reject: END-OF-MESSAGE from unknown[99.88.77.66]: 4.7.1 Greylisting in action, try again later; from=<user2@example.com> to=<some.dest@destdomain.com> proto=ESMTP helo=<host.sender.domain>",
			Record{Kind: KindAction, QueueID: "D6DDA23B0F", Action: "milter-reject", Stage: "END-OF-MESSAGE", ClientName: "unknown", ClientIP: "99.88.77.66", From: "user2@example.com", HasFrom: true,
				To: "some.dest@destdomain.com", Reason: "4.7.1 Greylisting in action, try again later", DSN: "4.7.1"}},
		{"cleanup", "ABCDEF1234: warning: header Subject: Hello from the other side from mail.example.com[192.0.2.1]; from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<mail.example.com>",
			Record{Kind: KindSubject, QueueID: "ABCDEF1234", Subject: "Hello from the other side"}},
		{"smtpd", "proxy-reject: END-OF-MESSAGE: 554 5.7.1 Rejected for policy reasons (381C4E5DFA31DF9E90F); from=<mailtestsender2@localhost.localdomain> to=<pmgtest@localhost.localdomain> proto=ESMTP helo=<localhost.localdomain>",
			Record{Kind: KindProxy, Action: "proxy-reject", Stage: "END-OF-MESSAGE", Response: "554 5.7.1 Rejected for policy reasons (381C4E5DFA31DF9E90F)", DSN: "5.7.1",
				FilterID: "381C4E5DFA31DF9E90F", From: "mailtestsender2@localhost.localdomain", HasFrom: true, To: "pmgtest@localhost.localdomain"}},
		// header_checks actions: the matched Subject is named only here, and
		// the DSN of a REJECT follows the long header text (the mail lab's
		// header-checks-* scenarios).
		{"cleanup", "A7EFEA9AA42: reject: header Subject: [lab-reject] casino from mail.remote.test[203.0.113.25]; from=<sender@remote.test> to=<u52@lab.test> proto=ESMTP helo=<mail.remote.test>: 5.7.1 lab rule: rejected",
			Record{Kind: KindAction, QueueID: "A7EFEA9AA42", Action: "reject", Stage: "header", From: "sender@remote.test", HasFrom: true, To: "u52@lab.test",
				Reason: "header Subject: [lab-reject] casino from mail.remote.test[203.0.113.25]: 5.7.1 lab rule: rejected", DSN: "5.7.1", Subject: "[lab-reject] casino"}},
		{"cleanup", "6DB43A9B9EF: redirect: header Subject: [lab-redirect] mail from home from mail.remote.test[203.0.113.25]; from=<sender@remote.test> to=<u51@lab.test> proto=ESMTP helo=<mail.remote.test>: dave@lab.test",
			Record{Kind: KindAction, QueueID: "6DB43A9B9EF", Action: "redirect", Stage: "header", From: "sender@remote.test", HasFrom: true, To: "u51@lab.test",
				Reason: "dave@lab.test", Subject: "[lab-redirect] mail from home"}},
		{"cleanup", "8A630B22136: hold: header Subject: [lab-hold] please review from mail.remote.test[203.0.113.25]; from=<sender@remote.test> to=<carol@lab.test> proto=ESMTP helo=<mail.remote.test>: lab rule: held for review",
			Record{Kind: KindAction, QueueID: "8A630B22136", Action: "hold", Stage: "header", From: "sender@remote.test", HasFrom: true, To: "carol@lab.test",
				Reason: "header Subject: [lab-hold] please review from mail.remote.test[203.0.113.25]: lab rule: held for review", Subject: "[lab-hold] please review"}},
		{"smtpd", "connect from x[1.2.3.4]", Record{Kind: KindIgnored}},
		{"smtpd", "ABCDEF1234: something new", Record{Kind: KindUnknown, QueueID: "ABCDEF1234"}},
	} {
		tc.want.Daemon = tc.daemon
		got := ParseMessage(tc.daemon, tc.msg)
		if !equalRecord(got, tc.want) {
			t.Errorf("ParseMessage(%q, %q)\n got %+v\nwant %+v", tc.daemon, tc.msg, got, tc.want)
		}
	}
}

func equalRecord(a, b Record) bool {
	return reflect.DeepEqual(a, b)
}

func TestParseAmavis(t *testing.T) {
	msg := `(351462-17) Blocked BANNED (.exe,.exe-ms,Purchase Order-20230315-pdf.scr) {DiscardedInbound,Quarantined}, [212.227.15.19]:46759 [35.188.35.122] ESMTP/ESMTP <user01.test@gmx.de> -> <user01.test@uhu-banane.net>,<b@uhu-banane.net>, (ESMTPS://[212.227.15.19]:46759), quarantine: t3d7qJkAoigg, Queue-ID: 4Pc3ZX1jFxz3tBr, Message-ID: <20230315083320.C472106BAA31721C@howunited.com>, mail_id: t3d7qJkAoigg, Hits: -, size: 3233426, Subject: "Re: New Order", From: <x@y>`
	r := ParseMessage("amavis", msg)
	if r.Kind != KindAmavis || r.Verdict != "Blocked" || r.Category != "BANNED" || r.Flags != "DiscardedInbound,Quarantined" ||
		r.QueueID != "4Pc3ZX1jFxz3tBr" || r.FilterID != "351462-17" || r.Subject != "Re: New Order" || r.From != "user01.test@gmx.de" ||
		len(r.Rcpts) != 2 || r.Rcpts[1] != "b@uhu-banane.net" {
		t.Errorf("%+v", r)
	}
}

// validIP gives the address's one written form, whatever the fast path
// (an IPv4 address is returned as it was written): the same as
// netip.Addr.String of the unmapped address, "" for what is not one.
func TestValidIPIsTheCanonicalForm(t *testing.T) {
	for _, s := range []string{
		"192.0.2.1", "0.0.0.0", "255.255.255.255", "10.1.2.3",
		"192.168.1.001", "256.1.1.1", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4 ", "01.2.3.4",
		"::1", "IPv6:2001:db8::1", "2001:DB8:0:0:0:0:0:1", "::ffff:192.0.2.1", "IPv6:::ffff:10.0.0.1",
		"fe80::1%eth0", "unknown", "", "IPv6:",
	} {
		want := ""
		if a, err := netip.ParseAddr(strings.TrimPrefix(s, "IPv6:")); err == nil {
			want = a.Unmap().String()
		}
		if got := validIP(s); got != want {
			t.Errorf("validIP(%q) = %q, want %q", s, got, want)
		}
	}
}

// parseKVStrings is parseKV as it was written with strings.TrimLeft,
// ContainsAny and IndexAny: the byte loops must read the same pairs.
func parseKVStrings(s string) kvList {
	var kv kvList
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ,")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key := s[:eq]
		if strings.ContainsAny(key, " ,") {
			sp := strings.IndexAny(s, " ,")
			s = s[sp:]
			continue
		}
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, "<") {
			end := strings.IndexByte(s, '>')
			if end < 0 {
				val, s = s, ""
			} else {
				val, s = s[:end+1], s[end+1:]
			}
		} else {
			end := strings.IndexAny(s, " ,")
			if end < 0 {
				val, s = s, ""
			} else {
				val, s = s[:end], s[end:]
			}
		}
		kv.add(key, val)
	}
	return kv
}

var kvSamples = []string{
	"", " ", ",", "=", "=x", "a=", "a=b", "a=b, c=<d e>, f=g", "to=<a@b>, relay=mx[1.2.3.4]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, ",
	"client=mail.example.net[192.0.2.1], sasl_method=PLAIN, sasl_username=u", "word a=b", "two words a=b c", "a=b word c=d",
	"a=<unterminated", "a=<x>y b=c", ",,a=b,,c=d,", "a=b a=c", "x y z", "a =b", "a= b", " =b c=d", "a=b,c", "from=<>, size=1, nrcpt=2 (queue active)",
	"k1=1 k2=2 k3=3 k4=4 k5=5 k6=6 k7=7 k8=8 k9=9 k10=10 k11=11 k12=12 k13=13 k14=14 k1=x",
}

func TestParseKVSameAsStrings(t *testing.T) {
	for _, s := range kvSamples {
		if got, want := parseKV(s), parseKVStrings(s); !reflect.DeepEqual(got, want) {
			t.Errorf("parseKV(%q) = %+v, want %+v", s, got, want)
		}
	}
}

func FuzzParseKV(f *testing.F) {
	for _, s := range kvSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := parseKV(s), parseKVStrings(s); !reflect.DeepEqual(got, want) {
			t.Errorf("parseKV(%q) = %+v, want %+v", s, got, want)
		}
	})
}
