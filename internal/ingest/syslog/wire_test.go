package syslog

import (
	"math/rand"
	"strings"
	"testing"
	"time"
)

// ParseFrame reads what the wire carries; the Text of what it reads is the
// line the server once rewrote each frame into (these cases and their
// wants are the old Normalize's), so a message keeps its identity.
func TestParseFrame(t *testing.T) {
	cases := []struct {
		in, text string
		fields   *Fields
	}{
		{"<22>Mar  1 12:00:00 mx postfix/smtpd[1]: hi", "Mar  1 12:00:00 mx postfix/smtpd[1]: hi", nil},
		{"<22>2023-03-14T00:00:31.185246+01:00 helga postfix/qmgr[9]: X: removed", "2023-03-14T00:00:31.185246+01:00 helga postfix/qmgr[9]: X: removed", nil},
		{"<22>1 2023-03-14T00:00:31.185Z mx postfix/smtp 4242 - - 4PbC4x469Jz3tBr: to=<a@b>", "2023-03-14T00:00:31.185Z mx postfix/smtp[4242]: 4PbC4x469Jz3tBr: to=<a@b>",
			&Fields{Timestamp: "2023-03-14T00:00:31.185Z", Host: "mx", App: "postfix/smtp", ProcID: "4242", Message: "4PbC4x469Jz3tBr: to=<a@b>"}},
		{"<22>1 2023-03-14T00:00:31Z mx postfix/qmgr - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App]lication\"][x@1 a=\"b\\\"]\"] \uFEFFABC: removed", "2023-03-14T00:00:31Z mx postfix/qmgr: ABC: removed",
			&Fields{Timestamp: "2023-03-14T00:00:31Z", Host: "mx", App: "postfix/qmgr", Message: "ABC: removed"}},
		{"<22>1 2023-03-14T00:00:31Z mx postfix/qmgr 12 - -", "2023-03-14T00:00:31Z mx postfix/qmgr[12]: ",
			&Fields{Timestamp: "2023-03-14T00:00:31Z", Host: "mx", App: "postfix/qmgr", ProcID: "12"}},
		{"<22>1 2023-03-14T00:00:31Z mx - - - - m", "2023-03-14T00:00:31Z mx unknown: m",
			&Fields{Timestamp: "2023-03-14T00:00:31Z", Host: "mx", App: "unknown", Message: "m"}},
		{"<22>1 - mx app - - - msg", "1 - mx app - - - msg", nil},
		{"<22>1 2023-03-14T00:00:31Z mx app - - [unterminated", "1 2023-03-14T00:00:31Z mx app - - [unterminated", nil},
		{"Mar  1 12:00:00 mx postfix/smtpd[1]: hi", "Mar  1 12:00:00 mx postfix/smtpd[1]: hi", nil},
		{"<abc>x", "<abc>x", nil},
		{"<2", "<2", nil},
		{"", "", nil},
	}
	for _, c := range cases {
		m := ParseFrame(c.in)
		if got := m.Text(); got != c.text {
			t.Errorf("ParseFrame(%q).Text()\n got %q\nwant %q", c.in, got, c.text)
		}
		switch {
		case c.fields == nil && m.Fields != nil:
			t.Errorf("ParseFrame(%q): fields %+v, want a line", c.in, *m.Fields)
		case c.fields != nil && (m.Fields == nil || *m.Fields != *c.fields):
			t.Errorf("ParseFrame(%q): %+v, want fields %+v", c.in, m, *c.fields)
		}
		if m.Fields != nil && m.Fields.Len() != len(c.text) {
			t.Errorf("ParseFrame(%q): Len %d, Text %d bytes", c.in, m.Fields.Len(), len(c.text))
		}
		if HasPRI(c.in) != strings.HasPrefix(c.in, "<22>") {
			t.Errorf("HasPRI(%q) = %v", c.in, HasPRI(c.in))
		}
	}
}

// fieldsOf splits a line of a file that starts with an RFC 3339 timestamp
// into Fields, roughly, as a sender that parses syslog would: damaged
// lines give damaged fields.
func fieldsOf(l string) (Fields, bool) {
	ts, rest, ok := strings.Cut(l, " ")
	if !ok || ts == "" || ts[0] < '0' || ts[0] > '9' {
		return Fields{}, false
	}
	host, rest, ok := strings.Cut(rest, " ")
	if !ok {
		return Fields{}, false
	}
	tag, msg, ok := strings.Cut(rest, ": ")
	if !ok {
		tag, msg = rest, ""
	}
	app, pid, _ := strings.Cut(strings.TrimSuffix(tag, "]"), "[")
	return Fields{Timestamp: ts, Host: host, App: app, ProcID: pid, Message: msg}, true
}

// wellFormed: fields a line of a file can carry (see ParseFields), their
// timestamp a whole timestamp (one the joined line may read differently,
// with the host: "2023-03-14" and "00:00:31", is refused).
func wellFormed(f Fields) bool {
	if f.Timestamp != "" {
		if _, rest, ok := parseISO(f.Timestamp, time.Now()); !ok || rest != "" {
			return false
		}
	}
	if f.Host == "" || strings.ContainsAny(f.Host, " ") || f.App == "" || strings.ContainsAny(f.App, "[: ") || len(f.ProcID) > 10 {
		return false
	}
	for i := 0; i < len(f.ProcID); i++ {
		if f.ProcID[i] < '0' || f.ProcID[i] > '9' {
			return false
		}
	}
	return true
}

// checkFields: ParseFields(f) is ParseInto(f.Text()), through two parsers
// that have read the same: the same Line and error for well-formed fields
// (the same instant for a Time, whose zone the line writes as an offset),
// ErrNotSyslog for the others, and the same year inference afterwards.
func checkFields(t *testing.T, a, b *Parser, f Fields) {
	t.Helper()
	var la, lb Line
	ea := a.ParseFields(&la, &f)
	eb := b.ParseInto(&lb, f.Text())
	if !wellFormed(f) {
		if ea != ErrNotSyslog {
			t.Fatalf("%+v: ParseFields accepts fields a line cannot carry: %#v", f, la)
		}
		b.Resume(a.Last())
		return
	}
	same := sameLine(la, lb)
	if f.Timestamp == "" && ea == nil && eb == nil {
		same = la.Time.Equal(lb.Time)
		la.Time, lb.Time = time.Time{}, time.Time{}
		same = same && la == lb
	}
	if ea != eb || !same || !a.Last().Equal(b.Last()) {
		t.Fatalf("%+v (%q):\nfields %#v %v\nline   %#v %v", f, f.Text(), la, ea, lb, eb)
	}
}

func TestParseFieldsIsParseOfText(t *testing.T) {
	ref := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	a, b := &Parser{Reference: ref}, &Parser{Reference: ref}
	rng := rand.New(rand.NewSource(7))
	n := 0
	for _, l := range sampleLines(t) {
		f, ok := fieldsOf(l)
		if !ok {
			// an RFC 3164 line between the others moves both parsers on
			_, _ = a.Parse(l)
			_, _ = b.Parse(l)
			continue
		}
		checkFields(t, a, b, f)
		// the same with the time as a time.Time (a JSON record's)
		if tm, err := time.Parse(time.RFC3339Nano, f.Timestamp); err == nil {
			g := f
			g.Timestamp, g.Time = "", tm
			checkFields(t, a, b, g)
		}
		// and with damage in a field
		g := f
		s := []*string{&g.Host, &g.App, &g.ProcID, &g.Message, &g.Timestamp}[rng.Intn(5)]
		if len(*s) > 0 {
			bs := []byte(*s)
			bs[rng.Intn(len(bs))] = "[]: 0aZ+-.\r\n"[rng.Intn(12)]
			*s = string(bs)
		}
		checkFields(t, a, b, g)
		n++
	}
	t.Logf("%d lines as fields", n)
	// times a line cannot carry
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 15*3600)), time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3601))} {
		var l Line
		if err := a.ParseFields(&l, &Fields{Time: tm, Host: "h", App: "p"}); err != ErrNotSyslog {
			t.Errorf("time %v: %v, want ErrNotSyslog", tm, err)
		}
	}
}

func FuzzParseFields(f *testing.F) {
	f.Add("2023-03-14T00:00:31.185246+01:00", "helga", "postfix/qmgr", "9", "X: removed\r\n", int64(0))
	f.Add("021-02-06T10:57:57+01:00", "mail", "postfix/smtpd", "", "x", int64(1))
	f.Add("", "h", "p", "12345678901", "", int64(1709287200123))
	ref := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ts, host, app, pid, msg string, ms int64) {
		fl := Fields{Timestamp: ts, Host: host, App: app, ProcID: pid, Message: msg}
		if ts == "" {
			fl.Time = time.UnixMilli(ms)
		}
		a, b := &Parser{Reference: ref}, &Parser{Reference: ref}
		for i := 0; i < 2; i++ {
			checkFields(t, a, b, fl)
		}
	})
}
