package cli

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/store"
)

func TestBuildQuery(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name    string
		f       queryFlags
		want    store.Query
		wantErr string
	}{
		{name: "defaults: the last 48 hours", want: store.Query{Start: now.Add(-48 * time.Hour), End: now}},
		{name: "since hours", f: queryFlags{since: "6h"}, want: store.Query{Start: now.Add(-6 * time.Hour), End: now}},
		{name: "since days", f: queryFlags{since: "7d"}, want: store.Query{Start: now.Add(-7 * day), End: now}},
		{name: "start and end", f: queryFlags{start: "2026-03-01T00:00:00Z", end: "2026-03-02T12:30:00+09:00"},
			want: store.Query{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 3, 30, 0, 0, time.UTC)}},
		{name: "start only ends now", f: queryFlags{start: "2026-03-10"},
			want: store.Query{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), End: now}},
		{name: "end only covers the 48 hours before it", f: queryFlags{end: "2026-03-10T00:00:00Z"},
			want: store.Query{Start: time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)}},
		{
			name: "every filter",
			f: queryFlags{
				senders: []string{"*@example.com", "Bob@Example.com"}, recipients: []string{"user@*"},
				statuses: []string{"failed", "FilteredAsSpam"}, messageID: " <abc@x> ", traceID: "4Xk2",
				direction: "outbound", originalIP: "203.0.113.0/24", fromIP: "198.51.100.7", toIP: "2001:db8::/32",
				subject: "Invoice", subjectMatch: "startswith",
			},
			want: store.Query{
				Start: now.Add(-48 * time.Hour), End: now,
				Senders: []string{"*@example.com", "Bob@Example.com"}, Recipients: []string{"user@*"},
				Statuses:  []store.Status{store.StatusFailed, store.StatusFilteredAsSpam},
				MessageID: "<abc@x>", MessageTraceID: "4Xk2", Direction: store.DirectionOutbound,
				OriginalClientIP: netip.MustParsePrefix("203.0.113.0/24"),
				FromIP:           netip.MustParsePrefix("198.51.100.7/32"),
				ToIP:             netip.MustParsePrefix("2001:db8::/32"),
				Subject:          "Invoice", SubjectMatch: store.SubjectStartsWith,
			},
		},
		{name: "IPv4-mapped IPv6 is unmapped", f: queryFlags{fromIP: "::ffff:192.0.2.1"},
			want: store.Query{Start: now.Add(-48 * time.Hour), End: now, FromIP: netip.MustParsePrefix("192.0.2.1/32")}},
		{name: "since with start", f: queryFlags{since: "1h", start: "2026-03-01"}, wantErr: "--since cannot be combined"},
		{name: "bad since", f: queryFlags{since: "a week"}, wantErr: "--since"},
		{name: "negative since", f: queryFlags{since: "-1h"}, wantErr: `--since: "-1h" is not a duration such as 48h, 90m or 7d`},
		{name: "zero since", f: queryFlags{since: "0d"}, wantErr: "not a positive duration"},
		{name: "since in days and hours", f: queryFlags{since: "1d12h"}, want: store.Query{Start: now.Add(-36 * time.Hour), End: now}},
		{name: "bad start", f: queryFlags{start: "yesterday"}, wantErr: "--start: \"yesterday\" is not an RFC 3339 time"},
		{name: "end before start", f: queryFlags{start: "2026-03-02", end: "2026-03-01"}, wantErr: "is not after start"},
		{name: "more than 90 days", f: queryFlags{since: "91d"}, wantErr: "longer than 90 days"},
		{name: "unknown status", f: queryFlags{statuses: []string{"Bounced"}}, wantErr: `--status: "Bounced" is not a delivery status (use Delivered, Pending`},
		{name: "unknown direction", f: queryFlags{direction: "sideways"}, wantErr: "--direction"},
		{name: "bad IP", f: queryFlags{toIP: "10.0.0.300"}, wantErr: "--to-ip: \"10.0.0.300\" is not an IP address or CIDR"},
		{name: "subject match without subject", f: queryFlags{subjectMatch: "Contains"}, wantErr: "--subject-match needs --subject"},
		{name: "bad subject match", f: queryFlags{subject: "x", subjectMatch: "Regex"}, wantErr: "--subject-match"},
		{name: "pattern with a space", f: queryFlags{senders: []string{"a b@example.com"}}, wantErr: "white space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildQuery(tt.f, now)
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

// The flags parse into queryFlags as documented (repeatable and comma-separated values).
func TestQueryFlagsParse(t *testing.T) {
	cmd := newQueryCommand()
	if err := cmd.ParseFlags([]string{
		"--sender", "a@example.com", "--sender", "*@partner.example",
		"--recipient", "x@*", "--status", "Failed,Pending", "--status", "Quarantined",
		"--since", "7d", "-o", "csv", "--all", "--store", "sqlite:///tmp/x.db",
	}); err != nil {
		t.Fatal(err)
	}
	senders, _ := cmd.Flags().GetStringArray("sender")
	statuses, _ := cmd.Flags().GetStringSlice("status")
	all, _ := cmd.Flags().GetBool("all")
	limit, _ := cmd.Flags().GetInt("limit")
	if !reflect.DeepEqual(senders, []string{"a@example.com", "*@partner.example"}) ||
		!reflect.DeepEqual(statuses, []string{"Failed", "Pending", "Quarantined"}) || !all || limit != 500 {
		t.Fatalf("senders %v statuses %v all %v limit %d", senders, statuses, all, limit)
	}
}

// --help shows --store's default; a password from MAILTRACE_STORE stays hidden.
func TestHelpHidesStorePassword(t *testing.T) {
	t.Setenv(EnvStore, "postgres://mt:s3cret@db/mailtrace")
	for _, args := range [][]string{{"query", "--help"}, {"manager", "--help"}, {"events", "load", "--help"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		if strings.Contains(out.String()+errOut.String(), "s3cret") || !strings.Contains(out.String(), "postgres://mt:xxxxx@db/mailtrace") {
			t.Errorf("%v help:\n%s", args, out.String())
		}
	}
}

// TestReadOnlyCommandsRefuseAMissingStore: query and details on a store
// that does not exist (a mistyped --store) fail naming it, and create
// nothing; ingest creates it, after which query reads it.
func TestReadOnlyCommandsRefuseAMissingStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct{ store, name string }{
		{"sqlite://" + filepath.Join(dir, "typo", "trace.db"), filepath.Join(dir, "typo", "trace.db")},
		{"trace.bd", "trace.bd"},
		{"sqlite://rel/trace.db", filepath.Join(dir, "rel", "trace.db")},
	} {
		for _, args := range [][]string{
			{"query", "--store", tc.store, "--since", "1d"},
			{"details", "--store", tc.store, "--trace-id", "m1"},
		} {
			var out, errOut bytes.Buffer
			code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
			if code == 0 || !strings.Contains(errOut.String(), tc.name) || !strings.Contains(errOut.String(), "does not exist") || !strings.Contains(errOut.String(), "--store") {
				t.Errorf("%v: exit %d, stderr %q, stdout %q; want an error naming %s", args, code, errOut.String(), out.String(), tc.name)
			}
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the read-only commands created %s", ents[0].Name())
	}

	log := filepath.Join(dir, "mail.log")
	if err := os.WriteFile(log, []byte("Mar  1 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<a@example.com>, size=100, nrcpt=1 (queue active)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := "sqlite://" + filepath.Join(dir, "new", "trace.db")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"ingest", "--file", log, "--store", db}, nil, &out, &errOut); code != 0 {
		t.Fatalf("ingest into a new store: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"query", "--store", db, "--since", "1d"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Errorf("query of the store ingest made: exit %d, %s", code, errOut.String())
	}
}
