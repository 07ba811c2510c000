package ingest

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedLines returns fuzz seeds: runs of consecutive lines from the maildata
// logs (when ../shared is present) and a few hand-made ones.
func seedLines(t testing.TB) []string {
	seeds := []string{
		"Mar  1 10:00:00 mx postfix/smtpd[1]: ABCDE12345: client=mx.example.net[192.0.2.1]\nMar  1 10:00:01 mx postfix/smtp[3]: ABCDE12345: to=<b@example.com>, orig_to=<g@example.com>, relay=r[192.0.2.7]:25, dsn=2.0.0, status=sent (250 ok)",
		"021-02-06T10:57:57+01:00 mail postfix/cleanup[59586]: D6DDA23B0F: milter-reject: END-OF-MESSAGE from unknown[99.88.77.66]: 4.7.1 Greylisting; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
		"", "\xff\x00", "Mar  1 10:00:00 mx postfix/bounce[1]: ABCDE12345: sender non-delivery notification: ABCDE12345",
	}
	if _, err := os.Stat(maildata); err != nil {
		return seeds
	}
	for _, f := range []string{
		"pmg-log-tracker/tests/test_input_mixed",
		"pmg-log-tracker/tests/test_input_mixed_accept_block_quarantine",
		"pmg-log-tracker/tests/test_input_after_queue_relay_before_lmtp",
		"postfix-log-parser-youyo/test-milter.log",
		"postfix-log-parser-youyo/test-iso8601.log",
		"postfix_exporter-digineo/mail.log",
		"fail2ban/postfix",
		"postfix-logsums/mail.log.gz",
	} {
		fh, err := os.Open(filepath.Join(maildata, f))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		var chunk []string
		n := 0
		for sc.Scan() && n < 40 {
			chunk = append(chunk, sc.Text())
			if len(chunk) == 12 {
				seeds = append(seeds, strings.Join(chunk, "\n"))
				chunk = nil
				n++
			}
		}
		if len(chunk) > 0 {
			seeds = append(seeds, strings.Join(chunk, "\n"))
		}
		fh.Close()
	}
	return seeds
}
