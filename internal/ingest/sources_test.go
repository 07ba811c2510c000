package ingest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// mailbox is a second source as a test would write one: it claims
// Dovecot's LMTP lines, emits a Deliver event for each saved message, and
// keeps a count as its state.
type mailbox struct {
	env   *source.Env
	saved int
}

func newMailbox(_ source.Config, env *source.Env) source.Source { return &mailbox{env: env} }

func (m *mailbox) Prepare(program, msg string) (source.Verdict, bool) {
	if program != "dovecot" {
		return source.Verdict{}, false
	}
	return source.Verdict{Daemon: "lmtp", Ignore: !strings.Contains(msg, "saved mail to")}, true
}

func (m *mailbox) Consume(l *source.Line) {
	m.saved++
	m.env.Emit(mailflow.Event{ID: "dovecot-" + l.Raw[:15], Time: l.UTC, MessageTraceID: "mailbox", Type: mailflow.EventDeliver,
		Recipient: "u@example.com", Source: l.Daemon, ServerHostname: l.Host, Detail: l.Message})
	m.env.Stats.Used++
}

func (m *mailbox) Sweep()                         {}
func (m *mailbox) Flush()                         {}
func (m *mailbox) TraceID(host, id string) string { return "" }
func (m *mailbox) State() (json.RawMessage, error) {
	return json.Marshal(m.saved)
}
func (m *mailbox) Restore(b json.RawMessage) error { return json.Unmarshal(b, &m.saved) }

// A second source is one more registration: its lines reach it, the
// others still reach Postfix, and a saved state carries both.
func TestSecondSource(t *testing.T) {
	defer func(s []source.Registration) { sources = s }(sources)
	// Postfix and the test's source alone (the registered Dovecot source
	// would claim the lines first)
	sources = []source.Registration{sources[0], {Name: "mailbox", New: newMailbox}}
	lines := []string{
		"Mar  1 10:00:00 mx postfix/smtpd[1]: ABCDE12345: client=a.example.net[192.0.2.1]",
		"Mar  1 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<x@example.net>, size=10, nrcpt=1 (queue active)",
		"Mar  1 10:00:02 mx dovecot: lmtp(u@example.com): Connect from local",
		"Mar  1 10:00:02 mx postfix/lmtp[3]: ABCDE12345: to=<u@example.com>, relay=mx[private/dovecot-lmtp], delay=1, dsn=2.0.0, status=sent (250 2.0.0 <u@example.com> Saved)",
		"Mar  1 10:00:02 mx dovecot: lmtp(u@example.com)<7><abc>: msgid=<m@x>: saved mail to INBOX",
		"Mar  1 10:00:03 mx opendkim[4]: ABCDE12345: DKIM verification successful",
	}
	s, c := run(t, testCfg, lines...)
	st := c.Stats()
	if st.Lines != 6 || st.Used != 4 || st.Ignored != 1 || st.NotUnderstood[ReasonNotPostfix] != 1 {
		t.Errorf("stats %+v", st)
	}
	if evs := s.traces["mailbox"]; len(evs) != 1 || evs[0].Source != "lmtp" || evs[0].ServerHostname != "mx" {
		t.Errorf("mailbox events %+v", evs)
	}
	if r := rowOf(t, s, c.TraceID("mx", "ABCDE12345"), "u@example.com"); r.Status != mailflow.StatusDelivered {
		t.Errorf("postfix row %+v", r)
	}
	saved, err := c.State()
	if err != nil {
		t.Fatal(err)
	}
	if string(saved.Sources["mailbox"]) != "1" || len(saved.Sources["postfix"]) < 10 {
		t.Errorf("state %+v", saved.Sources)
	}
	c2 := NewCorrelator(testCfg, s.Append)
	if err := c2.Restore(saved); err != nil {
		t.Fatal(err)
	}
	if m := c2.sources[1].(*mailbox); m.saved != 1 {
		t.Errorf("restored mailbox count %d", m.saved)
	}
}
