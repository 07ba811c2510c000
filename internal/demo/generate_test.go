package demo

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

var testNow = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := Generate(testNow), Generate(testNow)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Generate(now) gave different events on two calls")
	}
	if len(a) < 500 {
		t.Fatalf("only %d events; the demo wants a realistic volume", len(a))
	}
}

// statuses derives every (message, recipient) row's status the way the store
// does: message-level events belong to every recipient; a message with no
// recipient yet is one GettingStatus row.
func statuses(events []mailflow.Event) map[[2]string]mailflow.Status {
	byRow := map[[2]string][]mailflow.Event{}
	hasRcpt := map[string]bool{}
	for _, e := range events {
		if e.Recipient != "" {
			k := [2]string{e.MessageTraceID, e.Recipient}
			byRow[k] = append(byRow[k], e)
			hasRcpt[e.MessageTraceID] = true
		}
	}
	out := map[[2]string]mailflow.Status{}
	for k, evs := range byRow {
		out[k] = mailflow.DeriveStatus(evs)
	}
	for _, e := range events {
		if !hasRcpt[e.MessageTraceID] {
			out[[2]string{e.MessageTraceID, ""}] = mailflow.StatusGettingStatus
		}
	}
	return out
}

func TestGenerateCoversEveryStatusAndDirection(t *testing.T) {
	events := Generate(testNow)
	seen := map[mailflow.Status]int{}
	for _, s := range statuses(events) {
		seen[s]++
	}
	for _, s := range mailflow.AllStatuses {
		if seen[s] == 0 {
			t.Errorf("no row with status %s (have %v)", s, seen)
		}
	}
	dirs := map[mailflow.Direction]bool{}
	types := map[mailflow.EventType]bool{}
	japanese, dsn511, expandedFrom := false, false, false
	for _, e := range events {
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid event %+v: %v", e, err)
		}
		if e.Time.After(testNow) || e.Time.Before(testNow.Add(-Days*24*time.Hour)) {
			t.Errorf("event at %s is outside the %d days before %s", e.Time, Days, testNow)
		}
		if e.Direction != "" {
			dirs[e.Direction] = true
		}
		types[e.Type] = true
		japanese = japanese || strings.ContainsAny(e.Subject, "会議見積")
		dsn511 = dsn511 || (e.Type == mailflow.EventFail && e.DSN == "5.1.1")
		expandedFrom = expandedFrom || e.ExpandedFrom != ""
	}
	for _, d := range []mailflow.Direction{mailflow.DirectionInbound, mailflow.DirectionOutbound, mailflow.DirectionInternal} {
		if !dirs[d] {
			t.Errorf("no %s message", d)
		}
	}
	for _, et := range []mailflow.EventType{mailflow.EventReceive, mailflow.EventSubmit, mailflow.EventDeliver, mailflow.EventDefer,
		mailflow.EventFail, mailflow.EventExpand, mailflow.EventQuarantine, mailflow.EventFilterAsSpam, mailflow.EventNotify} {
		if !types[et] {
			t.Errorf("no %s event", et)
		}
	}
	if !japanese || !dsn511 || !expandedFrom {
		t.Errorf("japanese subject %v, 5.1.1 bounce %v, group member rows %v: want all", japanese, dsn511, expandedFrom)
	}
}

// The samples the demo applies must find something.
func TestGenerateFeedsTheSamples(t *testing.T) {
	events := Generate(testNow)
	rows := statuses(events)
	recv := map[string]mailflow.Event{}
	for _, e := range events {
		if e.Type == mailflow.EventReceive {
			recv[e.MessageTraceID] = e
		}
	}
	var sentLastDay, failed7d, pending2dToOrg int
	for k, s := range rows {
		r := recv[k[0]]
		age := testNow.Sub(r.Received)
		if age < 24*time.Hour && strings.HasSuffix(r.Sender, "@"+OrgDomain) {
			sentLastDay++
		}
		if age < 7*24*time.Hour && s == mailflow.StatusFailed {
			failed7d++
		}
		if age < 48*time.Hour && s == mailflow.StatusPending && strings.HasSuffix(k[1], "@"+OrgDomain) {
			pending2dToOrg++
		}
	}
	if sentLastDay == 0 || failed7d == 0 || pending2dToOrg == 0 {
		t.Errorf("sent from %s in the last day %d, failed in 7 days %d, pending to the organisation in 2 days %d: want all > 0",
			OrgDomain, sentLastDay, failed7d, pending2dToOrg)
	}
}
