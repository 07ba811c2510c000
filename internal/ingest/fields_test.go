package ingest

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// asFields splits a line of a file into the Fields a sender that parses
// syslog would send (RFC 5424 or JSON): the time as written for an RFC 3339
// line, as a time.Time for an RFC 3164 one, a damaged line as it comes.
func asFields(l string) (syslog.Fields, bool) {
	pl, err := syslog.ParseLine(l, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), nil)
	if err != nil {
		return syslog.Fields{}, false
	}
	f := syslog.Fields{Time: pl.Time, Host: pl.Host, App: pl.Program, Message: pl.Message}
	if pl.PID > 0 {
		f.ProcID = strconv.Itoa(pl.PID)
	}
	if ts, _, ok := strings.Cut(l, " "); ok && pl.HasYear && !strings.ContainsAny(ts, "\xff") {
		if _, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			f.Timestamp, f.Time = ts, time.Time{}
		}
	}
	return f, true
}

// FeedFields(f) is Feed(f.Text()) for every maildata file read as fields:
// the same events, byte for byte, in the same order, and the same counts.
// (Fields reach the correlator as they are; the file form is made only as
// the identity of the lines that may matter.)
func TestFeedFieldsIsFeedOfText(t *testing.T) {
	needMaildata(t)
	lines := 0
	for _, file := range maildataFiles(t) {
		f, err := os.Open(filepath.Join(maildata, file))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(file, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				t.Fatal(err)
			}
		}
		var a, b strings.Builder
		collect := func(w *strings.Builder) func([]mailflow.Event) error {
			enc := json.NewEncoder(w)
			return func(evs []mailflow.Event) error {
				for _, e := range evs {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
		}
		cfg := configFor(file)
		ca, cb := NewCorrelator(cfg, collect(&a)), NewCorrelator(cfg, collect(&b))
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := sc.Text()
			fl, ok := asFields(l)
			if ok {
				lines++
				err = ca.FeedFields(&fl)
				if err == nil {
					err = cb.Feed(fl.Text())
				}
			} else {
				err = ca.Feed(l)
				if err == nil {
					err = cb.Feed(l)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		if err := ca.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := cb.Flush(); err != nil {
			t.Fatal(err)
		}
		sa, sb := ca.Stats(), cb.Stats()
		if a.String() != b.String() || fmt.Sprint(sa) != fmt.Sprint(sb) {
			t.Errorf("%s: fields and their text differ\nfields %+v\ntext   %+v\n%.2000s\n---\n%.2000s", file, sa, sb, a.String(), b.String())
		}
	}
	t.Logf("%d lines read as fields", lines)
}

// A message sent as fields is checked as its line would be: too long,
// invalid UTF-8 (repaired), trailing CR/LF dropped, not syslog.
func TestFeedFieldsChecks(t *testing.T) {
	good := syslog.Fields{Timestamp: "2024-03-01T10:00:00Z", Host: "mx", App: "postfix/smtpd", ProcID: "1",
		Message: "ABCDE12345: client=mx.example.net[192.0.2.1]\r\n"}
	cases := []struct {
		name   string
		f      syslog.Fields
		reason string
		bad    int64
	}{
		{"good", good, "", 0},
		{"too long", func() syslog.Fields { f := good; f.Message = strings.Repeat("x", 1<<15); return f }(), ReasonTooLong, 0},
		{"invalid utf-8", func() syslog.Fields { f := good; f.Host = "m\xffx"; return f }(), "", 1},
		{"bad pid", func() syslog.Fields { f := good; f.ProcID = "x1"; return f }(), ReasonNotSyslog, 0},
		{"not postfix", func() syslog.Fields { f := good; f.App = "CRON"; return f }(), ReasonNotPostfix, 0},
	}
	for _, c := range cases {
		var evs []mailflow.Event
		cr := NewCorrelator(testCfg, func(b []mailflow.Event) error { evs = append(evs, b...); return nil })
		if err := cr.FeedFields(&c.f); err != nil {
			t.Fatal(err)
		}
		_ = cr.Flush()
		st := cr.Stats()
		_, reason := cr.Skipped()
		if reason != c.reason || st.InvalidUTF8 != c.bad || st.Lines != 1 {
			t.Errorf("%s: reason %q, invalid %d, lines %d", c.name, reason, st.InvalidUTF8, st.Lines)
		}
		if c.reason == "" && (len(evs) != 1 || strings.HasSuffix(evs[0].Detail, "\r\n")) {
			t.Errorf("%s: events %+v", c.name, evs)
		}
	}
}
