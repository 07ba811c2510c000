package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// The plugin's run flags are read by the same parsers as `mailtrace query`.
func TestRunFlagsShareQueryParsing(t *testing.T) {
	f := runFlags{
		statuses:     []string{"failed", "Pending"},
		direction:    "outbound",
		start:        "2026-03-01",
		end:          "2026-03-02T12:00:00Z",
		subject:      "invoice",
		subjectMatch: "startswith",
	}
	s, err := f.spec()
	if err != nil {
		t.Fatal(err)
	}
	if got := s.DeliveryStatuses; len(got) != 2 || got[0] != "Failed" || got[1] != "Pending" {
		t.Errorf("statuses = %v", got)
	}
	if s.Direction != v1alpha1.Direction("Outbound") {
		t.Errorf("direction = %q", s.Direction)
	}
	if want := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC); !s.StartTime.Time.Equal(want) {
		t.Errorf("start = %v, want %v", s.StartTime, want)
	}
	if s.Subject == nil || s.Subject.Match != "StartsWith" {
		t.Errorf("subject = %+v", s.Subject)
	}
	for _, tc := range []struct {
		f    runFlags
		want string
	}{
		{runFlags{statuses: []string{"Bounced"}}, `--status: "Bounced" is not a delivery status`},
		{runFlags{direction: "sideways"}, `--direction: "sideways" is not Inbound`},
		{runFlags{start: "yesterday"}, `--start: "yesterday" is not an RFC 3339 time`},
		{runFlags{subject: "x", subjectMatch: "Regex"}, `--subject-match: "Regex" is not Contains`},
		{runFlags{subjectMatch: "Contains"}, `--subject-match needs --subject`},
	} {
		if _, err := tc.f.spec(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("spec(%+v) error = %v, want %q", tc.f, err, tc.want)
		}
	}
}
