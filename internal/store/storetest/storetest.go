// Package storetest is the conformance suite every store.Store adapter must
// pass, and the benchmark they share.
//
// An adapter's test calls Run with a constructor that returns a fresh, empty
// store (and closes it with t.Cleanup). The expectations are literal: each
// hand-written case states the rows it wants, in order, so an adapter that
// drifts from the reference semantics (mailflow.Query.Match, mailflow.DeriveStatus)
// fails. A randomized case then compares Trace and Count with Query.Match
// over a few thousand generated rows.
//
// Times in the suite are whole milliseconds, so adapters that keep
// microseconds (PostgreSQL) round-trip them exactly.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// Run runs the conformance suite. newStore must return a fresh empty store
// for each call.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"NoFilterReturnsEveryRowInRangeNewestFirst", testNoFilter},
		{"RowCarriesEveryField", testRowFields},
		{"TimeRangeStartInclusiveEndExclusive", testTimeRange},
		{"SenderExact", testSenderExact},
		{"SenderDomainWildcard", testSenderDomainWildcard},
		{"SenderLocalPartWildcard", testSenderLocalWildcard},
		{"SubdomainWildcard", testSubdomainWildcard},
		{"WildcardInTheMiddle", testWildcardMiddle},
		{"WildcardAlone", testWildcardAlone},
		{"PatternMetacharactersAreLiteral", testPatternMetacharacters},
		{"AddressesAreCaseInsensitive", testAddressCase},
		{"UnicodeAddresses", testUnicodeAddresses},
		{"AddressWithTwoAtSigns", testTwoAtSigns},
		{"EmptyDomainPattern", testEmptyDomainPattern},
		{"MidWildcardRecipientsMetacharactersAreLiteral", testMidWildcardRecipients},
		{"MidWildcardFindsALateSender", testMidWildcardLateSender},
		{"MidWildcardAfterPrune", testMidWildcardAfterPrune},
		{"RecipientPatterns", testRecipientPatterns},
		{"SeveralPatternsAreOred", testPatternsOred},
		{"StatusFilter", testStatusFilter},
		{"MessageIDWithOrWithoutBracketsAnyCase", testMessageID},
		{"MessageTraceID", testMessageTraceID},
		{"DirectionFilter", testDirection},
		{"IPFilters", testIPFilters},
		{"SubjectMatchModes", testSubject},
		{"UnicodeSubjects", testUnicodeSubject},
		{"FiltersCombineWithAnd", testCombinations},
		{"CountAgreesWithTrace", testCountAgrees},
		{"OrderingTieBreakByTraceIDThenRecipient", testOrdering},
		{"CursorPagesHaveNoGapsOrDuplicates", testCursors},
		{"StreamFromCursorStopAndInvalid", testStream},
		{"CursorWithFilters", testCursorWithFilter},
		{"ZeroLimitMeansDefaultPageSize", testZeroLimit},
		{"InvalidQueriesAreRefused", testInvalid},
		{"EventsArrivingOutOfOrder", testOutOfOrder},
		{"StatusIndependentOfArrivalOrder", testArrivalOrderPermutations},
		{"SameInstantOutcomesRankedNotOrdered", testSameInstant},
		{"AppendTwiceChangesNothing", testIdempotent},
		{"AppendWithoutIDsIsIdempotent", testIdempotentDerivedKeys},
		{"StatusTransitions", testTransitions},
		{"ExpandedGroupAndMembers", testExpanded},
		{"FolderOfTheLatestSave", testFolder},
		{"PlaceholderRowUntilARecipientIsKnown", testPlaceholder},
		{"PlaceholderTakesMessageLevelOutcome", testPlaceholderOutcome},
		{"LateMessageAttributesFillEarlierRows", testLateAttributes},
		{"ExplicitReceivedTimeWins", testExplicitReceived},
		{"EventsForOneRecipient", testEvents},
		{"ScopeAlone", testScopeAlone},
		{"ScopeWithFilters", testScopeWithFilters},
		{"ScopeWithCursorPaging", testScopeCursor},
		{"CountsRespectTheScope", testScopeCounts},
		{"EmptyScopeSeesNothing", testScopeEmpty},
		{"ScopedEventsOnlyForVisibleRows", testScopedEvents},
		{"PruneRemovesOldMessagesOnly", testPrune},
		{"AppendRefusesInvalidEventsAtomically", testAppendInvalid},
		{"EmptyStore", testEmpty},
		{"RandomizedAgainstReference", testRandomized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fixture{t: t, st: newStore(t), ctx: context.Background()}
			c.fn(t, f)
		})
	}
}

// T0 is the reference instant of the hand-written cases.
var T0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func at(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }

// day is a query covering the day around T0.
func day() mailflow.Query {
	return mailflow.Query{Start: T0.Add(-24 * time.Hour), End: T0.Add(24 * time.Hour)}
}

type fixture struct {
	t   *testing.T
	st  store.Store
	ctx context.Context
}

func (f *fixture) append(evs ...mailflow.Event) {
	f.t.Helper()
	if err := f.st.Append(f.ctx, evs); err != nil {
		f.t.Fatalf("Append: %v", err)
	}
}

// all pages through a trace and returns its rows.
func (f *fixture) all(q mailflow.Query) []mailflow.Row {
	f.t.Helper()
	rows, _ := f.paged(q, 1000)
	if sm, ok := f.st.(store.Streamer); ok {
		streamed := f.streamed(sm, q, "")
		if !slices.EqualFunc(rows, streamed, rowsEqual) {
			f.t.Errorf("Stream(%s) differs from paging through Trace:\n stream %q\n paged  %q", describe(q), keys(streamed), keys(rows))
		}
	}
	return rows
}

// streamed returns the rows Stream gives from cursor.
func (f *fixture) streamed(sm store.Streamer, q mailflow.Query, cursor mailflow.Cursor) []mailflow.Row {
	f.t.Helper()
	out := []mailflow.Row{}
	if err := sm.Stream(f.ctx, q, cursor, func(r *mailflow.Row) error { out = append(out, *r); return nil }); err != nil {
		f.t.Fatalf("Stream(%s): %v", describe(q), err)
	}
	return out
}

// rowsEqual compares rows field by field, times by instant.
func rowsEqual(a, b mailflow.Row) bool {
	ta, tb := a.Received, b.Received
	sa, sb := a.StatusTime, b.StatusTime
	a.Received, b.Received, a.StatusTime, b.StatusTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b && ta.Equal(tb) && sa.Equal(sb)
}

// paged pages through a trace with the given page size and returns the rows
// and the number of pages; it checks the page invariants on the way.
func (f *fixture) paged(q mailflow.Query, size int) ([]mailflow.Row, int) {
	f.t.Helper()
	var out []mailflow.Row
	var cur mailflow.Cursor
	pages := 0
	for {
		p, err := f.st.Trace(f.ctx, q, cur, size)
		if err != nil {
			f.t.Fatalf("Trace(%+v, page %d): %v", q, pages+1, err)
		}
		pages++
		if len(p.Rows) > size {
			f.t.Fatalf("page %d has %d rows, limit %d", pages, len(p.Rows), size)
		}
		out = append(out, p.Rows...)
		if p.Next == "" {
			return out, pages
		}
		if len(p.Rows) == 0 {
			f.t.Fatalf("page %d is empty but has a Next cursor", pages)
		}
		if pages > 100000 {
			f.t.Fatalf("trace does not end")
		}
		cur = p.Next
	}
}

// keys renders rows as "traceID recipient" for literal comparisons.
func keys(rows []mailflow.Row) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.MessageTraceID+" "+r.Recipient)
	}
	return out
}

func (f *fixture) expectKeys(q mailflow.Query, want ...string) {
	f.t.Helper()
	if want == nil {
		want = []string{}
	}
	got := keys(f.all(q))
	if !slices.Equal(got, want) {
		f.t.Errorf("trace %s\n got  %q\n want %q", describe(q), got, want)
	}
	c, err := f.st.Count(f.ctx, q)
	if err != nil {
		f.t.Fatalf("Count(%s): %v", describe(q), err)
	}
	if c.Total != int64(len(want)) {
		f.t.Errorf("Count(%s).Total = %d, want %d", describe(q), c.Total, len(want))
	}
}

func (f *fixture) row(q mailflow.Query, traceID, recipient string) mailflow.Row {
	f.t.Helper()
	for _, r := range f.all(q) {
		if r.MessageTraceID == traceID && r.Recipient == recipient {
			return r
		}
	}
	f.t.Fatalf("no row %s %q in %q", traceID, recipient, keys(f.all(q)))
	return mailflow.Row{}
}

func describe(q mailflow.Query) string {
	var parts []string
	parts = append(parts, q.Start.UTC().Format(time.RFC3339)+".."+q.End.UTC().Format(time.RFC3339))
	add := func(name string, v any, set bool) {
		if set {
			parts = append(parts, fmt.Sprintf("%s=%v", name, v))
		}
	}
	add("senders", q.Senders, len(q.Senders) > 0)
	add("recipients", q.Recipients, len(q.Recipients) > 0)
	add("scope", q.Scope, q.Scope != nil)
	add("statuses", q.Statuses, len(q.Statuses) > 0)
	add("messageId", q.MessageID, q.MessageID != "")
	add("traceId", q.MessageTraceID, q.MessageTraceID != "")
	add("direction", q.Direction, q.Direction != "")
	add("originalClientIp", q.OriginalClientIP, q.OriginalClientIP.IsValid())
	add("fromIp", q.FromIP, q.FromIP.IsValid())
	add("toIp", q.ToIP, q.ToIP.IsValid())
	add("subject", fmt.Sprintf("%s %q", q.SubjectMatch, q.Subject), q.Subject != "")
	return "{" + strings.Join(parts, " ") + "}"
}

// rowEqual compares rows field by field (times with Equal).
func rowDiff(got, want mailflow.Row) string {
	var d []string
	cmpT := func(name string, g, w time.Time) {
		if !g.Equal(w) {
			d = append(d, fmt.Sprintf("%s: got %s want %s", name, g.UTC().Format(time.RFC3339Nano), w.UTC().Format(time.RFC3339Nano)))
		}
	}
	cmpS := func(name string, g, w any) {
		if g != w {
			d = append(d, fmt.Sprintf("%s: got %q want %q", name, g, w))
		}
	}
	cmpT("Received", got.Received, want.Received)
	cmpS("Sender", got.Sender, want.Sender)
	cmpS("Recipient", got.Recipient, want.Recipient)
	cmpS("Subject", got.Subject, want.Subject)
	cmpS("Status", got.Status, want.Status)
	cmpS("MessageID", got.MessageID, want.MessageID)
	cmpS("MessageTraceID", got.MessageTraceID, want.MessageTraceID)
	cmpS("Size", fmt.Sprint(got.Size), fmt.Sprint(want.Size))
	cmpS("OriginalClientIP", got.OriginalClientIP, want.OriginalClientIP)
	cmpS("FromIP", got.FromIP, want.FromIP)
	cmpS("ToIP", got.ToIP, want.ToIP)
	cmpS("Direction", got.Direction, want.Direction)
	cmpS("ExpandedFrom", got.ExpandedFrom, want.ExpandedFrom)
	cmpT("StatusTime", got.StatusTime, want.StatusTime)
	cmpS("Folder", got.Folder, want.Folder)
	return strings.Join(d, "; ")
}

func (f *fixture) expectRow(got, want mailflow.Row) {
	f.t.Helper()
	if d := rowDiff(got, want); d != "" {
		f.t.Errorf("row %s %q: %s", want.MessageTraceID, want.Recipient, d)
	}
}

func mustPrefix(s string) netip.Prefix {
	p, err := mailflow.ParsePrefix(s)
	if err != nil {
		panic(err)
	}
	return p
}

func isInvalid(err error) bool { return errors.Is(err, mailflow.ErrInvalidQuery) }
