package messagetrace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

func cond(t v1alpha1.ConditionType, s metav1.ConditionStatus, r v1alpha1.Reason) metav1.Condition {
	return metav1.Condition{Type: string(t), Status: s, Reason: string(r), Message: "m"}
}

const (
	tru = metav1.ConditionTrue
	fls = metav1.ConditionFalse
)

func TestPhaseOf(t *testing.T) {
	cases := []struct {
		name  string
		conds []metav1.Condition
		want  v1alpha1.Phase
	}{
		{"new object", nil, v1alpha1.PhasePending},
		{"succeeded", []metav1.Condition{cond(v1alpha1.ConditionSucceeded, tru, v1alpha1.ReasonCompleted), cond(v1alpha1.ConditionFailed, fls, v1alpha1.ReasonCompleted)}, v1alpha1.PhaseSucceeded},
		{"failed", []metav1.Condition{cond(v1alpha1.ConditionFailed, tru, v1alpha1.ReasonStartInFuture), cond(v1alpha1.ConditionSucceeded, fls, v1alpha1.ReasonStartInFuture)}, v1alpha1.PhaseFailed},
		{"retrying a store that is down", []metav1.Condition{cond(v1alpha1.ConditionSucceeded, fls, v1alpha1.ReasonStoreUnavailable), cond(v1alpha1.ConditionStoreAvailable, fls, v1alpha1.ReasonStoreUnavailable)}, v1alpha1.PhaseRunning},
		{"running", []metav1.Condition{cond(v1alpha1.ConditionSucceeded, fls, v1alpha1.ReasonRunning)}, v1alpha1.PhaseRunning},
		{"waiting for a report", []metav1.Condition{cond(v1alpha1.ConditionSucceeded, fls, v1alpha1.ReasonReportRequired)}, v1alpha1.PhasePending},
		{"store condition alone says nothing of the outcome", []metav1.Condition{cond(v1alpha1.ConditionStoreAvailable, tru, v1alpha1.ReasonStoreAvailable)}, v1alpha1.PhasePending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := PhaseOf(tc.conds); got != tc.want {
				t.Errorf("PhaseOf = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: end is not after start", mailflow.ErrInvalidQuery), true},
		{fmt.Errorf("postgres: %w", fmt.Errorf("%w: malformed cursor", mailflow.ErrInvalidQuery)), true},
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), false},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("count: %w", context.Canceled), false},
	}
	for _, tc := range cases {
		if got := IsTerminal(tc.err); got != tc.want {
			t.Errorf("IsTerminal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func rowsOf(n int, subject string) []v1alpha1.TraceRow {
	out := make([]v1alpha1.TraceRow, n)
	for i := range out {
		out[i] = v1alpha1.TraceRow{
			Received:       metav1.NewTime(time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)),
			Sender:         "a@example.com",
			Recipient:      fmt.Sprintf("r%03d@example.org", i),
			Subject:        subject,
			Status:         "Delivered",
			MessageTraceID: fmt.Sprintf("m%03d", i),
		}
	}
	return out
}

func TestFitRows(t *testing.T) {
	rows := rowsOf(10, "hello")
	one := RowBytes(rows[0])
	if one < 100 || one > 400 {
		t.Fatalf("RowBytes = %d, not a plausible JSON size", one)
	}
	cases := []struct {
		name     string
		limit    int
		maxBytes int
		want     int
	}{
		{"everything fits", 500, 1 << 20, 10},
		{"row limit cuts", 3, 1 << 20, 3},
		{"byte budget cuts", 500, one*4 + one/2, 4},
		{"budget of exactly four rows", 500, one * 4, 4},
		{"the smaller bound wins", 2, one * 4, 2},
		{"budget smaller than one row", 500, one - 1, 0},
		{"limit zero", 0, 1 << 20, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := FitRows(rows, tc.limit, tc.maxBytes)
			if len(got) != tc.want {
				t.Fatalf("kept %d rows, want %d", len(got), tc.want)
			}
			for i := range got {
				if got[i].MessageTraceID != rows[i].MessageTraceID {
					t.Fatalf("row %d is %s: FitRows must keep the first (newest) rows in order", i, got[i].MessageTraceID)
				}
			}
		})
	}
	t.Run("1000 rows of 256-character subjects stay far below etcd's limit", func(t *testing.T) {
		big := rowsOf(1000, strings.Repeat("€", 256))
		got := FitRows(big, 1000, DefaultMaxStatusBytes)
		total := 0
		for _, r := range got {
			total += RowBytes(r)
		}
		if total > DefaultMaxStatusBytes || len(got) == 1000 || len(got) == 0 {
			t.Fatalf("kept %d rows, %d bytes; budget %d", len(got), total, DefaultMaxStatusBytes)
		}
	})
}

func TestTruncateRunes(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"日本語のメール", 3, "日本語"},
		{"", 3, ""},
		{"abc", 0, ""},
	}
	for _, tc := range cases {
		if got := TruncateRunes(tc.in, tc.n); got != tc.want {
			t.Errorf("TruncateRunes(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	long := strings.Repeat("é", 300)
	if got := TruncateRunes(long, MaxSubjectRunes); utf8.RuneCountInString(got) != 256 || !utf8.ValidString(got) {
		t.Errorf("a 300-character subject cut to %d characters (valid UTF-8: %v)", utf8.RuneCountInString(got), utf8.ValidString(got))
	}
}

func TestFormatDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{48 * time.Hour, "48h"},
		{240 * time.Hour, "240h"},
		{2160 * time.Hour, "2160h"},
		{90 * time.Minute, "1h30m"},
		{30 * time.Minute, "30m"},
		{45 * time.Second, "45s"},
		{time.Hour + 1500*time.Millisecond, "1h0m2s"},
		{0, "0s"},
		{-time.Hour, "0s"},
	}
	for _, tc := range cases {
		if got := FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestToRowAndCounts(t *testing.T) {
	r := mailflow.Row{
		Received: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)),
		Sender:   "a@x", Recipient: "b@y", Subject: strings.Repeat("s", 300), Status: mailflow.StatusFailed,
		MessageID: "id@x", MessageTraceID: "T1", Size: 42, FromIP: "192.0.2.1", ToIP: "192.0.2.2",
		Direction: mailflow.DirectionOutbound, Folder: "Junk",
	}
	got := ToRow(r)
	if got.Received.Location() != time.UTC || !got.Received.Time.Equal(r.Received) {
		t.Errorf("received %v, want %v in UTC", got.Received, r.Received)
	}
	if len(got.Subject) != 256 || got.Status != "Failed" || got.Direction != "Outbound" || got.Size != 42 ||
		got.MessageTraceID != "T1" || got.FromIP != "192.0.2.1" || got.ToIP != "192.0.2.2" || got.MessageID != "id@x" ||
		got.Folder != "Junk" {
		t.Errorf("ToRow = %+v", got)
	}
	c := CountsOf(mailflow.Counts{Total: 6, ByStatus: map[mailflow.Status]int64{mailflow.StatusDelivered: 3, mailflow.StatusFailed: 2, mailflow.StatusGettingStatus: 1}})
	if (*c != v1alpha1.StatusCounts{Delivered: 3, Failed: 2, GettingStatus: 1}) {
		t.Errorf("CountsOf = %+v", *c)
	}
}

func TestBuildQuery(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(48 * time.Hour)
	spec := &v1alpha1.MessageTraceSpec{
		SenderAddresses:    []v1alpha1.AddressPattern{"*@example.com"},
		RecipientAddresses: []v1alpha1.AddressPattern{"bob@example.org", "*@example.net"},
		DeliveryStatuses:   []v1alpha1.DeliveryStatus{"Failed", "Pending"},
		MessageID:          "<m@x>",
		MessageTraceID:     "T1",
		Direction:          "Outbound",
		OriginalClientIP:   "198.51.100.7",
		FromIP:             "198.51.100.0/24",
		ToIP:               "2001:db8::/32",
		Subject:            &v1alpha1.SubjectFilter{Value: "invoice", Match: "StartsWith"},
	}
	q, err := BuildQuery(spec, start, end)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Start.Equal(start) || !q.End.Equal(end) ||
		fmt.Sprint(q.Senders) != "[*@example.com]" || fmt.Sprint(q.Recipients) != "[bob@example.org *@example.net]" ||
		fmt.Sprint(q.Statuses) != "[Failed Pending]" || q.MessageID != "<m@x>" || q.MessageTraceID != "T1" ||
		q.Direction != mailflow.DirectionOutbound || q.Subject != "invoice" || q.SubjectMatch != mailflow.SubjectStartsWith ||
		q.OriginalClientIP != netip.MustParsePrefix("198.51.100.7/32") || q.FromIP != netip.MustParsePrefix("198.51.100.0/24") ||
		q.ToIP != netip.MustParsePrefix("2001:db8::/32") {
		t.Errorf("BuildQuery = %+v", q)
	}

	bad := []struct {
		name       string
		spec       v1alpha1.MessageTraceSpec
		start, end time.Time
	}{
		{"range ends before it starts", v1alpha1.MessageTraceSpec{}, end, start},
		{"range over 90 days", v1alpha1.MessageTraceSpec{}, start, start.Add(91 * 24 * time.Hour)},
		{"control character in a pattern", v1alpha1.MessageTraceSpec{SenderAddresses: []v1alpha1.AddressPattern{"a\tb@x"}}, start, end},
		{"not an IP", v1alpha1.MessageTraceSpec{FromIP: "nope"}, start, end},
	}
	for _, tc := range bad {
		if _, err := BuildQuery(&tc.spec, tc.start, tc.end); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestTransitionsAndOutcome(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fresh := v1alpha1.MessageTraceStatus{}
	storeDown := v1alpha1.MessageTraceStatus{StartTime: &now, Attempts: 1, Conditions: []metav1.Condition{
		cond(v1alpha1.ConditionStoreAvailable, fls, v1alpha1.ReasonStoreUnavailable),
		cond(v1alpha1.ConditionSucceeded, fls, v1alpha1.ReasonStoreUnavailable)}}
	storeDownAgain := *storeDown.DeepCopy()
	storeDownAgain.Attempts = 2
	succeeded := v1alpha1.MessageTraceStatus{StartTime: &now, TotalMatches: 3, ReturnedRows: 3, Conditions: []metav1.Condition{
		cond(v1alpha1.ConditionStoreAvailable, tru, v1alpha1.ReasonStoreAvailable),
		cond(v1alpha1.ConditionSucceeded, tru, v1alpha1.ReasonCompleted),
		cond(v1alpha1.ConditionFailed, fls, v1alpha1.ReasonCompleted)}}
	failed := v1alpha1.MessageTraceStatus{Conditions: []metav1.Condition{
		cond(v1alpha1.ConditionFailed, tru, v1alpha1.ReasonStartInFuture),
		cond(v1alpha1.ConditionSucceeded, fls, v1alpha1.ReasonStartInFuture)}}
	report := v1alpha1.MessageTraceStatus{Conditions: []metav1.Condition{cond(v1alpha1.ConditionSucceeded, fls, v1alpha1.ReasonReportRequired)}}

	cases := []struct {
		name     string
		old, cur v1alpha1.MessageTraceStatus
		events   string
		outcome  string
	}{
		{"first run succeeds", fresh, succeeded, "Normal/Started Normal/Succeeded", "succeeded"},
		{"first run meets a store that is down", fresh, storeDown, "Normal/Started Warning/StoreUnavailable", ""},
		{"store still down: no new event", storeDown, storeDownAgain, "", ""},
		{"store back", storeDownAgain, succeeded, "Normal/Succeeded", "succeeded"},
		{"start in the future", fresh, failed, "Warning/Failed", "failed"},
		{"range needs a report", fresh, report, "Warning/ReportRequired", "report_required"},
		{"report still required: no new event", report, report, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range Transitions(&tc.old, &tc.cur) {
				got = append(got, e.Type+"/"+e.Reason)
				if e.Message == "" {
					t.Errorf("%s has no message", e.Reason)
				}
			}
			if strings.Join(got, " ") != tc.events {
				t.Errorf("events %q, want %q", strings.Join(got, " "), tc.events)
			}
			if o := Outcome(&tc.old, &tc.cur); o != tc.outcome {
				t.Errorf("outcome %q, want %q", o, tc.outcome)
			}
		})
	}
}
