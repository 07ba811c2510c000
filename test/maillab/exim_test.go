package maillab_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/maillab"
)

// eximScenarios are the lab's scenarios (scenarios()) that run through
// Exim too, unchanged: the same mail, the same expected rows. Those left
// out need what only the lab's Postfix has (header_checks, SMTPUTF8 to
// LMTP, its own restart) or test Postfix's known gaps in its listing
// order. rspamd scans through Exim's spam ACL (maillab's exim.go) what it
// scans as Postfix's milter: the GTUBE scenarios are Postfix's, with the
// same rows. Exim's line of a refusal after DATA ("<id> H=... F=<...>
// rejected after DATA: 554 5.7.1 ...", "temporarily rejected" for the soft
// reject) names neither the recipients nor the Message-ID: rspamd's
// verdict on the message (qid: its Exim id) names both, and gives the
// refusal a row per recipient, as Postfix's milter-reject does, found by
// the Message-ID (internal/ingest/source/exim's join.go).
var eximScenarios = []string{
	"inbound-inbox",
	"distribution-group",
	"single-alias",
	"outbound-delivered",
	"outbound-deferred",
	"hard-bounce",
	"unknown-local-user",
	"outbound-deferred-then-delivered",
	"outbound-mailbox-full",
	"relay-denied",
	"mixed-recipients",
	"outbound-expired",
	"fifty-recipients",
	"8bit-japanese-subject",
	"internal",
	"spoofed-internal-sender",
	"dovecot-over-quota",
	"sieve-discard",
	"insufficient-storage",
	"outbound-partly-deferred",
	"loopback-client",
	"gtube-rejected",
	"rspamd-add-header-sieve-junk",
	"rspamd-soft-reject",
	"ingester-restart",
}

// eximAbout is what a scenario is through Exim where its own words are
// Postfix's (the rspamd milter's replies).
var eximAbout = map[string]string{
	"gtube-rejected": "rspamd answers \"reject\" to GTUBE and Exim's spam ACL refuses it after DATA (554 5.7.1): FilteredAsSpam, the row " +
		"the recipient's, whom Exim's line does not name and rspamd's does",
	"rspamd-soft-reject": "rspamd answers \"soft reject\" and Exim's spam ACL defers it after DATA (451 4.7.1), the client to retry: " +
		"Pending with a Defer, rspamd's action in the timeline, the row the recipient's, whom Exim's line does not name and rspamd's does",
}

// TestExim runs eximScenarios through Exim (maillab.Lab.UseExim): its own
// log file shipped into the same ingester, the same rows expected as from
// Postfix. With -update it writes its table into docs/maillab.md.
func TestExim(t *testing.T) {
	l := maillab.Start(t)
	l.UseExim(t)
	byName := map[string]scenario{}
	for _, sc := range scenarios() {
		byName[sc.name] = sc
	}
	resultsMu.Lock()
	n0 := len(results)
	resultsMu.Unlock()
	t.Cleanup(func() {
		// this test's results are its own table's, not TestScenarios'
		resultsMu.Lock()
		mine := append([]result(nil), results[n0:]...)
		results = results[:n0]
		resultsMu.Unlock()
		if *update {
			writeTable(t, eximBegin, eximEnd, eximScenarios, mine)
		}
	})
	for _, serial := range []bool{false, true} {
		group := "mail"
		if serial {
			group = "restart"
		}
		t.Run(group, func(t *testing.T) {
			for _, name := range eximScenarios {
				sc, ok := byName[name]
				if !ok {
					t.Errorf("no scenario %q in scenarios()", name)
					continue
				}
				if sc.serial != serial {
					continue
				}
				sc.gap = nil // Postfix's known gaps are not Exim's: the truth or a failure
				if a, ok := eximAbout[name]; ok {
					sc.about = a
				}
				sc.send, sc.truth = scanned(sc.send, sc.truth)
				t.Run(name, func(t *testing.T) {
					if !serial {
						t.Parallel()
					}
					run(t, l, sc)
				})
			}
		})
	}
}

// scanned makes a scenario check rspamd's verdict too: each row of the
// message it sent (its Message-ID) has rspamd's Scan event in its
// timeline, since Exim's spam ACL asks rspamd about every message it
// receives over SMTP. (The rows' expected events leave the Scan out, as
// Postfix's do: rspamd's line and the MTA's of the same second reach the
// ingester in either order.) A bounce Exim makes itself and a recipient
// refused at RCPT are no message the scenario sent with its Message-ID,
// and are not scanned.
func scanned(send func(*testing.T, *maillab.Lab) sent, truth func(*maillab.Lab) string) (func(*testing.T, *maillab.Lab) sent, func(*maillab.Lab) string) {
	var mu sync.Mutex
	var messageID string
	return func(t *testing.T, l *maillab.Lab) sent {
			s := send(t, l)
			mu.Lock()
			messageID = s.messageID
			mu.Unlock()
			return s
		}, func(l *maillab.Lab) string {
			if truth != nil {
				if p := truth(l); p != "" {
					return p
				}
			}
			mu.Lock()
			id := messageID
			mu.Unlock()
			if id == "" {
				return ""
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rows, err := l.Rows(ctx, mailflow.Query{MessageID: id})
			if err != nil {
				return "rspamd's verdict: " + err.Error()
			}
			if len(rows) == 0 {
				return "rspamd's verdict: no row of " + id + " yet"
			}
			for _, r := range rows {
				evs, err := l.Store.Events(ctx, r.MessageTraceID, r.Recipient)
				if err != nil {
					return "rspamd's verdict: " + err.Error()
				}
				if !slices.ContainsFunc(evs, func(e mailflow.Event) bool { return e.Type == mailflow.EventScan && e.Source == "rspamd" }) {
					return fmt.Sprintf("rspamd's verdict: no Scan event in the timeline of %s's row (%s)", r.Recipient, joinTypes(eventTypes(evs)))
				}
			}
			return ""
		}
}

const (
	eximBegin = "<!-- exim scenarios: generated by `go test ./test/maillab -run TestExim -update`; do not edit -->"
	eximEnd   = "<!-- end of exim scenarios -->"
)

// writeTable rewrites the table of results between begin and end in
// docs/maillab.md, in the order of names.
func writeTable(t *testing.T, begin, end string, names []string, rs []result) {
	order := map[string]int{}
	for i, n := range names {
		order[n] = i
	}
	byName := map[string]result{}
	for _, r := range rs {
		byName[r.name] = r
	}
	var b strings.Builder
	b.WriteString(begin + "\n")
	b.WriteString("| # | scenario | expected rows | observed rows | result |\n|---|---|---|---|---|\n")
	i := 0
	for _, n := range names {
		r, ok := byName[n]
		if !ok {
			continue
		}
		i++
		fmt.Fprintf(&b, "| %d | **%s**: %s | %s | %s | %s |\n", i, r.name, r.about, cell(r.expected), cell(r.observed), r.outcome)
	}
	b.WriteString(end)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Errorf("update: %v", err)
		return
	}
	s := string(doc)
	i0, j := strings.Index(s, begin), strings.Index(s, end)
	if i0 < 0 || j < i0 {
		t.Errorf("update: %s has no %q ... %q markers", docPath, begin, end)
		return
	}
	s = s[:i0] + b.String() + s[j+len(end):]
	if err := os.WriteFile(docPath, []byte(s), 0o644); err != nil {
		t.Errorf("update: %v", err)
	}
}
