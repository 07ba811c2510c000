package messagetrace

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestDetailsOf(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(i int, typ mailflow.EventType, detail string) mailflow.Event {
		return mailflow.Event{Time: t0.Add(time.Duration(i) * time.Minute), MessageTraceID: "m", Recipient: "r@x", Type: typ, Detail: detail}
	}
	many := func(n int) []mailflow.Event {
		var out []mailflow.Event
		for i := n - 1; i >= 0; i-- { // out of order on purpose
			out = append(out, ev(i, mailflow.EventDefer, "451 later"))
		}
		return out
	}
	long := strings.Repeat("é", MaxDetailText+10)
	cases := []struct {
		name                string
		evs                 []mailflow.Event
		maxEvents, maxBytes int
		wantN               int
		wantTrunc           bool
		firstMinute         int // minute offset of the first event kept
	}{
		{"none", nil, 200, 1 << 20, 0, false, -1},
		{"ordered-oldest-first", many(3), 200, 1 << 20, 3, false, 0},
		{"count-bound-keeps-latest", many(250), 200, 1 << 20, 200, true, 50},
		{"byte-bound-keeps-latest", many(10), 200, 400, 0, true, -1}, // set below from the JSON size
	}
	one := len(mustJSON(t, ToMessageEvent(ev(0, mailflow.EventDefer, "451 later"))))
	cases[3].maxBytes = 3*one + one/2
	cases[3].wantN, cases[3].firstMinute = 3, 7
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := DetailsOf("m", "r@x", tc.evs, tc.maxEvents, tc.maxBytes)
			if len(d.Events) != tc.wantN || d.Truncated != tc.wantTrunc || int(d.TotalEvents) != len(tc.evs) {
				t.Fatalf("got %d events truncated=%v total=%d, want %d %v %d", len(d.Events), d.Truncated, d.TotalEvents, tc.wantN, tc.wantTrunc, len(tc.evs))
			}
			for i := 1; i < len(d.Events); i++ {
				if d.Events[i].Time.Before(&d.Events[i-1].Time) {
					t.Fatalf("events not oldest first at %d", i)
				}
			}
			if tc.firstMinute >= 0 && !d.Events[0].Time.Time.Equal(t0.Add(time.Duration(tc.firstMinute)*time.Minute)) {
				t.Errorf("first event at %s, want minute %d", d.Events[0].Time, tc.firstMinute)
			}
		})
	}
	t.Run("long-text-cut", func(t *testing.T) {
		e := ev(0, mailflow.EventFail, long)
		e.SMTPResponse = "550 5.1.1 no such user"
		got := ToMessageEvent(e)
		if !got.Truncated || len([]rune(got.Detail)) > MaxDetailText || got.SMTPResponse != e.SMTPResponse {
			t.Errorf("got truncated=%v detail of %d runes, response %q", got.Truncated, len([]rune(got.Detail)), got.SMTPResponse)
		}
		if ToMessageEvent(ev(0, mailflow.EventFail, "short")).Truncated {
			t.Error("a short detail is marked truncated")
		}
	})
	t.Run("spam-verdict-and-folder", func(t *testing.T) {
		scan := ev(0, mailflow.EventScan, "rspamd: add header")
		scan.Action, scan.Score, scan.Symbols = "add header", "6.00/15.00", []string{"GTUBE", "MISSING_DATE"}
		got := ToMessageEvent(scan)
		if got.SpamAction != "add header" || got.SpamScore != "6.00/15.00" || strings.Join(got.SpamSymbols, ",") != "GTUBE,MISSING_DATE" || got.Truncated {
			t.Errorf("scan: %+v", got)
		}
		save := ev(1, mailflow.EventSave, "stored")
		save.Folder = "Junk"
		if got := ToMessageEvent(save); got.Folder != "Junk" {
			t.Errorf("save: folder %q", got.Folder)
		}
		// a hostile scanner's list is bounded, and says so
		many := ev(2, mailflow.EventScan, "x")
		for i := 0; i < 50; i++ {
			many.Symbols = append(many.Symbols, strings.Repeat("S", 100))
		}
		got = ToMessageEvent(many)
		if len(got.SpamSymbols) != maxSpamSymbols || len(got.SpamSymbols[0]) != maxSpamText || !got.Truncated {
			t.Errorf("50 long symbols: kept %d, the first %d long, truncated %v", len(got.SpamSymbols), len(got.SpamSymbols[0]), got.Truncated)
		}
	})
	t.Run("messages", func(t *testing.T) {
		for _, tc := range []struct {
			d    v1alpha1.MessageDetailsStatus
			want string
		}{
			{v1alpha1.MessageDetailsStatus{MessageTraceID: "m", Recipient: "r"}, "no events"},
			{v1alpha1.MessageDetailsStatus{MessageTraceID: "m", Recipient: "r", TotalEvents: 3, Events: make([]v1alpha1.MessageEvent, 3)}, "all shown"},
			{v1alpha1.MessageDetailsStatus{MessageTraceID: "m", Recipient: "r", TotalEvents: 300, Truncated: true, Events: make([]v1alpha1.MessageEvent, 200)}, "latest 200"},
		} {
			if got := DetailsMessage(&tc.d); !strings.Contains(got, tc.want) {
				t.Errorf("%q does not say %q", got, tc.want)
			}
		}
	})
}

// TestDetailsTimeline seeds a store, asks for one recipient's details and
// checks the timeline: message-level events and the recipient's own, the
// failure's DSN and SMTP response, no rows; an unknown message succeeds with
// no events; an address that is not a recipient fails NotARecipient;
// without a recipient, every recipient's timeline; the event filter; the
// CRD refuses details without a message trace ID.
func TestDetailsTimeline(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	d0 := day0()
	st := openSQLite(t)
	seedStore(t, st, d0)
	fail := mailflow.Event{ID: "m11-kim-fail-detail", Time: d0.Add(4*day + 2*time.Hour + 40*time.Minute), MessageTraceID: "m11",
		Recipient: "kim@example.org", Type: mailflow.EventFail, Source: "smtp", Relay: "mx.example.org[192.0.2.20]:25",
		DSN: "5.1.1", SMTPResponse: "550 5.1.1 <kim@example.org>: Recipient address rejected: User unknown",
		ServerHostname: "mail.example.com", Detail: "bounced"}
	if err := st.Append(context.Background(), []mailflow.Event{fail}); err != nil {
		t.Fatal(err)
	}
	startManager(t, env, ns, st, nil, Options{})

	mt := create(t, env.Client, ns, "kim", v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: "m11", Recipient: "kim@example.org"}})
	got := waitUntil(t, env.Client, mt, "finished", isFinished)
	requireCondition(t, got, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
	d := got.Status.Details
	if d == nil {
		t.Fatalf("no status.details: %+v", got.Status)
	}
	if len(got.Status.Rows) != 0 || got.Status.Report != nil {
		t.Errorf("a details trace has rows or a report: %+v", got.Status)
	}
	var types []string
	for _, e := range d.Events {
		types = append(types, e.Event)
	}
	if strings.Join(types, ",") != "Receive,Fail,Fail" || d.TotalEvents != 3 || d.Truncated {
		t.Fatalf("timeline %v (total %d, truncated %v), want Receive,Fail,Fail", types, d.TotalEvents, d.Truncated)
	}
	last := d.Events[2]
	if last.DSN != "5.1.1" || last.SMTPResponse != fail.SMTPResponse || last.Relay != fail.Relay || last.Source != "smtp" || last.ServerHostname != "mail.example.com" {
		t.Errorf("failure event %+v", last)
	}
	if d.Events[0].FromIP != "10.0.0.5" || !d.Events[0].Time.Time.Equal(d0.Add(4*day+2*time.Hour)) {
		t.Errorf("receive event %+v", d.Events[0])
	}

	unknown := create(t, env.Client, ns, "unknown", v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: "nope", Recipient: "kim@example.org"}})
	got = waitUntil(t, env.Client, unknown, "finished", isFinished)
	c := requireCondition(t, got, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
	if got.Status.Details == nil || len(got.Status.Details.Events) != 0 || !strings.Contains(c.Message, "no events") {
		t.Errorf("unknown message: details %+v, message %q", got.Status.Details, c.Message)
	}

	// An address that is not one of m11's recipients gets no timeline (the
	// store alone would answer with the message-level Receive): the trace
	// fails NotARecipient and names the recipients there are.
	stranger := create(t, env.Client, ns, "stranger", v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: "m11", Recipient: "nobody@example.org"}})
	got = waitUntil(t, env.Client, stranger, "finished", isFinished)
	c = requireCondition(t, got, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonNotARecipient)
	if got.Status.Details != nil || !strings.Contains(c.Message, "nobody@example.org is not a recipient of message m11") ||
		!strings.Contains(c.Message, "judy@example.org, kim@example.org") {
		t.Errorf("a stranger recipient: details %+v, message %q", got.Status.Details, c.Message)
	}

	// Without a recipient: every recipient's timeline, each event naming
	// its recipient; with an event filter, only those events.
	all := create(t, env.Client, ns, "all", v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: "m11"}})
	got = waitUntil(t, env.Client, all, "finished", isFinished)
	c = requireCondition(t, got, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, v1alpha1.ReasonCompleted)
	d = got.Status.Details
	if d == nil || d.Recipient != "" || strings.Join(d.Recipients, ",") != "judy@example.org,kim@example.org" {
		t.Fatalf("every recipient: details %+v", d)
	}
	var seen []string
	for _, e := range d.Events {
		seen = append(seen, e.Event+":"+e.Recipient)
	}
	if strings.Join(seen, ",") != "Receive:,Deliver:judy@example.org,Fail:kim@example.org,Fail:kim@example.org" || d.TotalEvents != 4 ||
		!strings.Contains(c.Message, "its 2 recipients") {
		t.Errorf("every recipient's timeline %v (total %d), message %q; want Receive, judy's Deliver, kim's two Fails", seen, d.TotalEvents, c.Message)
	}
	fails := create(t, env.Client, ns, "fails", v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: "m11", Events: []v1alpha1.EventType{"Fail", "Receive"}}})
	got = waitUntil(t, env.Client, fails, "finished", isFinished)
	seen = nil
	for _, e := range got.Status.Details.Events {
		seen = append(seen, e.Event+":"+e.Recipient)
	}
	if strings.Join(seen, ",") != "Receive:,Fail:kim@example.org,Fail:kim@example.org" || got.Status.Details.TotalEvents != 3 {
		t.Errorf("events Fail and Receive: %v (total %d)", seen, got.Status.Details.TotalEvents)
	}
	judy := create(t, env.Client, ns, "judy-deliver", v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: "m11", Recipient: "judy@example.org", Events: []v1alpha1.EventType{"Deliver"}}})
	got = waitUntil(t, env.Client, judy, "finished", isFinished)
	if d := got.Status.Details; d == nil || len(d.Events) != 1 || d.Events[0].Event != "Deliver" || d.Events[0].Recipient != "judy@example.org" {
		t.Errorf("judy's Deliver events: %+v", got.Status.Details)
	}

	bad := &v1alpha1.MessageTrace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "half"},
		Spec: v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{Recipient: "kim@example.org"}}}
	if err := env.Client.Create(testCtx(t), bad); err == nil || !strings.Contains(err.Error(), "details needs messageTraceId") {
		t.Errorf("details without messageTraceId: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A recipient that is not one of the message's gets no timeline: the
// message-level events alone would read as that address's.
func TestOfRecipient(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []mailflow.Event{
		{Time: t0, MessageTraceID: "m", Type: mailflow.EventReceive},
		{Time: t0.Add(time.Minute), MessageTraceID: "m", Recipient: "Kim@Example.org", Type: mailflow.EventDeliver},
	}
	msgOnly := evs[:1]
	for _, tc := range []struct {
		recipient string
		evs       []mailflow.Event
		want      int
	}{
		{"kim@example.org", evs, 2},
		{"<KIM@example.org>", evs, 2},
		{"", msgOnly, 1},
		{"bob@example.org", msgOnly, 0}, // the store's answer for a stranger: message-level events only
		{"bob@example.org", nil, 0},
	} {
		if got := OfRecipient(tc.recipient, tc.evs); len(got) != tc.want {
			t.Errorf("OfRecipient(%q) kept %d events, want %d", tc.recipient, len(got), tc.want)
		}
	}
}
