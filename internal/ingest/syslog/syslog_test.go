package syslog

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	ref := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	cet := time.FixedZone("", 3600)
	for _, tc := range []struct {
		name, line string
		ref        time.Time
		want       Line
	}{
		{"rfc3164", "Mar  1 12:34:56 host postfix/smtpd[123]: connect from x[1.2.3.4]", ref,
			Line{Time: time.Date(2024, 3, 1, 12, 34, 56, 0, time.UTC), Host: "host", Program: "postfix/smtpd", PID: 123, Message: "connect from x[1.2.3.4]"}},
		{"rfc3164 zero-padded day (crowdsec)", "Jun 04 22:24:28 machine postfix/smtpd[3967801]: NOQUEUE: reject: x", ref,
			Line{Time: time.Date(2023, 6, 4, 22, 24, 28, 0, time.UTC), Host: "machine", Program: "postfix/smtpd", PID: 3967801, Message: "NOQUEUE: reject: x"}},
		{"rfc3164 not after ref+1d: December read in January is last year", "Dec 31 23:59:59 h postfix/qmgr[1]: A1B2C3D4E5: removed", time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC),
			Line{Time: time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC), Host: "h", Program: "postfix/qmgr", PID: 1, Message: "A1B2C3D4E5: removed"}},
		{"rfc3339 with fraction and offset", "2023-03-14T00:08:33.579644+01:00 helga postfix/smtpd[297535]: 4PbC4x469Jz3tBr: client=a[1.2.3.4]", ref,
			Line{Time: time.Date(2023, 3, 14, 0, 8, 33, 579644000, cet), Host: "helga", Program: "postfix/smtpd", PID: 297535, Message: "4PbC4x469Jz3tBr: client=a[1.2.3.4]", HasYear: true}},
		{"rfc3339 Z", "2024-08-26T01:33:38Z machine postfix/submission/smtpd[60203]: warning: x", ref,
			Line{Time: time.Date(2024, 8, 26, 1, 33, 38, 0, time.UTC), Host: "machine", Program: "postfix/submission/smtpd", PID: 60203, Message: "warning: x", HasYear: true}},
		{"missing colon after pid (youyo)", "2021-02-19T14:32:14.936091+01:00 smtp01.example.org postfix/smtpd[58176] E89FA2DEDA: client=srv05.source.com[10.11.12.13]", ref,
			Line{Time: time.Date(2021, 2, 19, 14, 32, 14, 936091000, cet), Host: "smtp01.example.org", Program: "postfix/smtpd", PID: 58176, Message: "E89FA2DEDA: client=srv05.source.com[10.11.12.13]", HasYear: true}},
		{"truncated leading year (youyo)", "021-02-06T10:57:57+01:00 mail.server.com postfix/smtpd[59633]: D6DDA23B0F: client=unknown[99.88.77.66]", ref,
			Line{Time: time.Date(2021, 2, 6, 10, 57, 57, 0, cet), Host: "mail.server.com", Program: "postfix/smtpd", PID: 59633, Message: "D6DDA23B0F: client=unknown[99.88.77.66]", HasYear: true}},
		{"no pid", "May 11 04:02:36 host1 amavis: (1234-01) Passed CLEAN", ref,
			Line{Time: time.Date(2024, 5, 11, 4, 2, 36, 0, time.UTC), Host: "host1", Program: "amavis", Message: "(1234-01) Passed CLEAN"}},
		{"dashed program", "May 11 04:02:36 pmg pmg-smtp-filter[1565]: 381C4E5DFA31DF9E90F: new mail message-id=<xyz>", ref,
			Line{Time: time.Date(2024, 5, 11, 4, 2, 36, 0, time.UTC), Host: "pmg", Program: "pmg-smtp-filter", PID: 1565, Message: "381C4E5DFA31DF9E90F: new mail message-id=<xyz>"}},
		{"postfix-out multi-instance", "May 11 04:02:36 mx postfix-out/smtp[9]: ABCDEF123: to=<a@b>, status=sent (ok)", ref,
			Line{Time: time.Date(2024, 5, 11, 4, 2, 36, 0, time.UTC), Host: "mx", Program: "postfix-out/smtp", PID: 9, Message: "ABCDEF123: to=<a@b>, status=sent (ok)"}},
		{"numbered instance", "2023-03-14T00:08:35.917122+01:00 helga postfix/10025/smtpd[302614]: 4PbC4z6W5Qz3tG3: client=localhost[127.0.0.1]", ref,
			Line{Time: time.Date(2023, 3, 14, 0, 8, 35, 917122000, cet), Host: "helga", Program: "postfix/10025/smtpd", PID: 302614, Message: "4PbC4z6W5Qz3tG3: client=localhost[127.0.0.1]", HasYear: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLine(tc.line, tc.ref, nil)
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tc.line, err)
			}
			if !got.Time.Equal(tc.want.Time) {
				t.Errorf("time %s, want %s", got.Time, tc.want.Time)
			}
			got.Time, tc.want.Time = time.Time{}, time.Time{}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseLineRejects(t *testing.T) {
	ref := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, line := range []string{
		"", "garbage", "Foo  1 12:34:56 host prog: x", "Mar 32 12:34:56 host prog: x",
		"Feb 30 12:34:56 host prog: x", "Mar  1 25:00:00 host prog: x", "Mar  1 12:34:56",
		"Mar  1 12:34:56 host", "2024-13-01T00:00:00Z host prog: x", "2024-01-01T00:00:00+99:00 host prog: x",
		"2024-01-01T00:00:00Z", "12345-01-01T00:00:00Z host p: x", "Mar  1 12:34:56 host prog[abc]: x",
		"Mar  1 12:34:56 host prog[12: x", "\x00\x01\x02", "# failJSON: { }",
		"TO:5FDCC0A8:21BCE3807B6:Q: from <a> to <b>",
	} {
		if l, err := ParseLine(line, ref, nil); err == nil {
			t.Errorf("ParseLine(%q) = %+v, want an error", line, l)
		}
	}
}

// TestParserYearRollover: a file read in order keeps increasing across the
// new year, and the first line is placed against the reference.
func TestParserYearRollover(t *testing.T) {
	p := Parser{Reference: time.Date(2025, 1, 5, 0, 0, 0, 0, time.UTC)}
	var got []time.Time
	for _, l := range []string{
		"Dec 30 10:00:00 h postfix/qmgr[1]: x",
		"Dec 31 23:59:59 h postfix/qmgr[1]: x",
		"Jan  1 00:00:01 h postfix/qmgr[1]: x",
		"Dec 31 23:59:58 h postfix/qmgr[1]: late line",
		"Mar  5 00:00:00 h postfix/qmgr[1]: after a gap",
	} {
		x, err := p.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, x.Time)
	}
	want := []time.Time{
		time.Date(2024, 12, 30, 10, 0, 0, 0, time.UTC),
		time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC),
		time.Date(2024, 12, 31, 23, 59, 58, 0, time.UTC),
		time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC),
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("line %d: %s, want %s", i, got[i], want[i])
		}
	}
}

// TestSyslogHeadersOfSampleFiles: every line of the crowdsec and youyo
// samples (and the PMG inputs) has a syslog header we read.
func TestSyslogHeadersOfSampleFiles(t *testing.T) {
	root := "../../../../shared/maildata"
	if _, err := os.Stat(root); err != nil {
		t.Skipf("%s is absent (a fresh clone): %v", root, err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "crowdsec-hub/*/*.log"))
	more, _ := filepath.Glob(filepath.Join(root, "postfix-log-parser-youyo/*.log"))
	files = append(files, more...)
	files = append(files, filepath.Join(root, "pmg-log-tracker/tests/test_input_mixed"), filepath.Join(root, "postfix_exporter-digineo/mail.log"))
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		p := Parser{Reference: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
		for sc.Scan() {
			line := sc.Text()
			if strings.TrimSpace(line) == "" {
				continue
			}
			l, err := p.Parse(line)
			if err != nil {
				t.Errorf("%s: %q: %v", filepath.Base(f), line, err)
				continue
			}
			if l.Host == "" || l.Program == "" || l.Time.IsZero() {
				t.Errorf("%s: %q: %+v", filepath.Base(f), line, l)
			}
			n++
		}
		fh.Close()
	}
	t.Logf("%d lines from %d files", n, len(files))
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"Mar  1 12:34:56 host postfix/smtpd[123]: connect from x[1.2.3.4]",
		"2023-03-14T00:08:33.579644+01:00 helga postfix/smtpd[297535]: 4PbC4x469Jz3tBr: client=a[1.2.3.4]",
		"021-02-06T10:57:57+01:00 mail.server.com postfix/smtpd[59633]: D6DDA23B0F: client=unknown[99.88.77.66]",
		"2021-02-19T14:32:14.936091+01:00 smtp01.example.org postfix/smtpd[58176] E89FA2DEDA: client=srv05.source.com[10.11.12.13]",
		"Jun 04 22:24:28 machine postfix/smtpd[3967801]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 454 4.7.1 <a@b>: Relay access denied; from=<a@b> to=<c@d> proto=ESMTP helo=<x>",
		"Dec 18 15:00:00 pmg something[12345]: BEFORE QUEUE LOGS START",
		"", "\xff\xfe", "Feb 29 00:00:00 h p: leap",
	} {
		f.Add(s)
	}
	ref := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		l, err := ParseLine(line, ref, nil)
		if err != nil {
			return
		}
		if l.Host == "" || l.Program == "" || strings.ContainsAny(l.Host, " ") {
			t.Fatalf("ParseLine(%q) = %+v", line, l)
		}
		if !l.HasYear && l.Time.After(ref.Add(24*time.Hour)) {
			t.Fatalf("ParseLine(%q): %s is after the reference", line, l.Time)
		}
		var p Parser
		p.Reference = ref
		if _, err := p.Parse(line); err != nil {
			t.Fatalf("Parser.Parse(%q) failed where ParseLine did not: %v", line, err)
		}
	})
}

// Offsets that are not whole hours keep their offset (from the zone cache).
func TestParseHalfHourOffset(t *testing.T) {
	for i := 0; i < 2; i++ {
		l, err := ParseLine("2023-03-14T00:00:31.5+05:30 mx postfix/qmgr[7]: ABCDE12345: removed", time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, off := l.Time.Zone(); off != 5*3600+1800 || l.Time.UTC().Format(time.RFC3339Nano) != "2023-03-13T18:30:31.5Z" || l.PID != 7 {
			t.Fatalf("%v offset %d pid %d", l.Time, off, l.PID)
		}
	}
	for _, bad := range []string{"2023-03-14T00:00:31Z mx postfix/qmgr[]: x", "2023-03-14T00:00:31Z mx postfix/qmgr[-1]: x", "2023-03-14T00:00:31Z mx postfixqmgr"} {
		if _, err := ParseLine(bad, time.Time{}, nil); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
