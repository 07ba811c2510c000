package filterflags

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// TestQuery: the flags as mailtrace query reads them (kubectl mailtrace
// run reads the same through Spec; internal/plugin tests that).
func TestQuery(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name    string
		f       Flags
		want    mailflow.Query
		wantErr string
	}{
		{name: "defaults: the last 48 hours", want: mailflow.Query{Start: now.Add(-48 * time.Hour), End: now}},
		{name: "since hours", f: Flags{Since: "6h"}, want: mailflow.Query{Start: now.Add(-6 * time.Hour), End: now}},
		{name: "since days", f: Flags{Since: "7d"}, want: mailflow.Query{Start: now.Add(-7 * day), End: now}},
		{name: "start and end", f: Flags{Start: "2026-03-01T00:00:00Z", End: "2026-03-02T12:30:00+09:00"},
			want: mailflow.Query{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 3, 30, 0, 0, time.UTC)}},
		{name: "start only ends now", f: Flags{Start: "2026-03-10"},
			want: mailflow.Query{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), End: now}},
		{name: "end only covers the 48 hours before it", f: Flags{End: "2026-03-10T00:00:00Z"},
			want: mailflow.Query{Start: time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)}},
		{
			name: "every filter",
			f: Flags{
				Senders: []string{"*@example.com", "Bob@Example.com"}, Recipients: []string{"user@*"},
				Statuses: []string{"failed", "FilteredAsSpam"}, MessageID: " <abc@x> ", TraceID: "4Xk2",
				Direction: "outbound", OriginalClientIP: "203.0.113.0/24", FromIP: "198.51.100.7", ToIP: "2001:db8::/32",
				Subject: "Invoice", SubjectMatch: "startswith",
			},
			want: mailflow.Query{
				Start: now.Add(-48 * time.Hour), End: now,
				Senders: []string{"*@example.com", "Bob@Example.com"}, Recipients: []string{"user@*"},
				Statuses:  []mailflow.Status{mailflow.StatusFailed, mailflow.StatusFilteredAsSpam},
				MessageID: "<abc@x>", MessageTraceID: "4Xk2", Direction: mailflow.DirectionOutbound,
				OriginalClientIP: netip.MustParsePrefix("203.0.113.0/24"),
				FromIP:           netip.MustParsePrefix("198.51.100.7/32"),
				ToIP:             netip.MustParsePrefix("2001:db8::/32"),
				Subject:          "Invoice", SubjectMatch: mailflow.SubjectStartsWith,
			},
		},
		{name: "IPv4-mapped IPv6 is unmapped", f: Flags{FromIP: "::ffff:192.0.2.1"},
			want: mailflow.Query{Start: now.Add(-48 * time.Hour), End: now, FromIP: netip.MustParsePrefix("192.0.2.1/32")}},
		{name: "since with start", f: Flags{Since: "1h", Start: "2026-03-01"}, wantErr: "--since cannot be combined"},
		{name: "bad since", f: Flags{Since: "a week"}, wantErr: "--since"},
		{name: "negative since", f: Flags{Since: "-1h"}, wantErr: `--since: "-1h" is not a duration such as 48h, 90m or 7d`},
		{name: "zero since", f: Flags{Since: "0d"}, wantErr: "not a positive duration"},
		{name: "since in days and hours", f: Flags{Since: "1d12h"}, want: mailflow.Query{Start: now.Add(-36 * time.Hour), End: now}},
		{name: "bad start", f: Flags{Start: "yesterday"}, wantErr: "--start: \"yesterday\" is not an RFC 3339 time"},
		{name: "end before start", f: Flags{Start: "2026-03-02", End: "2026-03-01"}, wantErr: "is not after start"},
		{name: "more than 90 days", f: Flags{Since: "91d"}, wantErr: "longer than 90 days"},
		{name: "unknown status", f: Flags{Statuses: []string{"Bounced"}}, wantErr: `--status: "Bounced" is not a delivery status (use Delivered, Pending`},
		{name: "unknown direction", f: Flags{Direction: "sideways"}, wantErr: "--direction"},
		{name: "bad IP", f: Flags{ToIP: "10.0.0.300"}, wantErr: "--to-ip: \"10.0.0.300\" is not an IP address or CIDR"},
		{name: "subject match without subject", f: Flags{SubjectMatch: "Contains"}, wantErr: "--subject-match needs --subject"},
		{name: "bad subject match", f: Flags{Subject: "x", SubjectMatch: "Regex"}, wantErr: "--subject-match"},
		{name: "pattern with a space", f: Flags{Senders: []string{"a b@example.com"}}, wantErr: "white space"},
		{name: "plain dates in a time zone", f: Flags{Start: "2026-03-01", End: "2026-03-02T09:30", TimeZone: "Asia/Tokyo"},
			want: mailflow.Query{Start: time.Date(2026, 2, 28, 15, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC)}},
		{name: "an offset wins over the time zone", f: Flags{Start: "2026-03-01T00:00:00Z", TimeZone: "Asia/Tokyo"},
			want: mailflow.Query{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: now}},
		{name: "a summer date in Berlin", f: Flags{Start: "2026-07-01 08:00", End: "2026-07-02", TimeZone: "Europe/Berlin"},
			want: mailflow.Query{Start: time.Date(2026, 7, 1, 6, 0, 0, 0, time.UTC), End: time.Date(2026, 7, 1, 22, 0, 0, 0, time.UTC)}},
		{name: "unknown time zone", f: Flags{TimeZone: "Mars/Olympus"}, wantErr: `--time-zone: "Mars/Olympus" is not an IANA time zone`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.f.TimeZone == "" {
				tt.f.TimeZone = "UTC" // the default is the machine's zone: the table is read in UTC
			}
			got, err := tt.f.Query(now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *time.Location
	}{{"", time.Local}, {"local", time.Local}, {"UTC", time.UTC}, {"utc", time.UTC}} {
		if got, err := LoadLocation(tc.in); err != nil || got != tc.want {
			t.Errorf("LoadLocation(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if got, err := LoadLocation("Asia/Tokyo"); err != nil || got.String() != "Asia/Tokyo" {
		t.Errorf("LoadLocation(Asia/Tokyo) = %v, %v", got, err)
	}
	if _, err := LoadLocation("JST"); err == nil {
		t.Error("an abbreviation is taken for an IANA name")
	}
}

func TestParseEventTypes(t *testing.T) {
	got, err := ParseEventTypes([]string{"deliver", " FAIL ", "Deliver", ""})
	if err != nil || len(got) != 2 || got[0] != mailflow.EventDeliver || got[1] != mailflow.EventFail {
		t.Errorf("ParseEventTypes = %v, %v", got, err)
	}
	if _, err := ParseEventTypes([]string{"Bounce"}); err == nil || !strings.Contains(err.Error(), `"Bounce" is not an event type (Receive, Submit`) {
		t.Errorf("an unknown event type: %v", err)
	}
}
