package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

func TestYearReference(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		year int
		want time.Time
		err  string
	}{
		{0, time.Time{}, ""},
		{2015, time.Date(2015, 12, 31, 23, 59, 59, 0, time.UTC), ""},
		{2026, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), ""},
		{2027, time.Time{}, "--year 2027: a log's year is between 1970 and this year (2026)"},
		{15, time.Time{}, "--year 15: a log's year is between 1970"},
	} {
		got, err := yearReference(tc.year, nil, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("yearReference(%d) error %v, want %q", tc.year, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("yearReference(%d) = %v, %v; want %v", tc.year, got, err, tc.want)
		}
	}
}

// A backfill of an old log: --year places it, the retention check refuses
// what the manager would prune, and nothing is stored when it refuses.
func TestBackfillYearAndRetention(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "mail.log")
	lines := "Dec 31 23:59:58 mx postfix/qmgr[2]: ABCDE12345: from=<a@example.com>, size=100, nrcpt=1 (queue active)\n" +
		"Jan  1 00:00:01 mx postfix/local[3]: ABCDE12345: to=<u@example.com>, relay=local, delay=1, dsn=2.0.0, status=sent (delivered to mailbox)\n" +
		"Jan  1 00:00:01 mx postfix/qmgr[2]: ABCDE12345: removed\n"
	if err := os.WriteFile(log, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	ingest := func(db string, args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"ingest", "--file", log, "--store", "sqlite://" + db, "--accepted-domain", "example.com"}, args...), nil, &out, &errOut)
		return code, out.String() + errOut.String()
	}

	// 2015, kept by the default retention of 90 days? No: refused, nothing stored.
	refused := filepath.Join(dir, "refused.db")
	code, out := ingest(refused, "--year", "2015")
	if code == 0 || !strings.Contains(out, "starts on 2015-12-31 23:59 UTC, before the retention window of 90d") ||
		!strings.Contains(out, "raise --retention here and on the manager") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("a refused backfill created %s (%v)", refused, err)
	}
	// Without --year the message says the year may be the cause.
	if code, out := ingest(refused); code == 0 || !strings.Contains(out, "say which with --year") {
		t.Errorf("without --year: exit %d:\n%s", code, out)
	}

	// A line that states its year gets no hint about --year.
	iso := filepath.Join(dir, "iso.log")
	if err := os.WriteFile(iso, []byte("2015-03-01T10:00:00+01:00 mx postfix/qmgr[2]: ABCDE12345: removed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var o1, e1 bytes.Buffer
	if code := run(context.Background(), []string{"ingest", "--file", iso, "--store", "sqlite://" + refused}, nil, &o1, &e1); code == 0 ||
		!strings.Contains(e1.String(), "starts on 2015-03-01 10:00 +0100") || strings.Contains(e1.String(), "--year") {
		t.Errorf("a log with years: exit %d: %s", code, e1.String())
	}

	// With the manager's retention off, --year 2015 puts the log in 2015 and
	// its last lines in 2016, one message across New Year.
	db := filepath.Join(dir, "trace.db")
	if code, out := ingest(db, "--year", "2015", "--retention", "0"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.Trace(context.Background(), mailflow.Query{Start: time.Date(2015, 12, 31, 0, 0, 0, 0, time.UTC), End: time.Date(2016, 1, 2, 0, 0, 0, 0, time.UTC)}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Rows) != 1 || page.Rows[0].Status != mailflow.StatusDelivered ||
		!page.Rows[0].Received.Equal(time.Date(2015, 12, 31, 23, 59, 58, 0, time.UTC)) ||
		!page.Rows[0].StatusTime.Equal(time.Date(2016, 1, 1, 0, 0, 1, 0, time.UTC)) {
		t.Errorf("rows %+v, want one Delivered row received 2015-12-31 23:59:58, delivered 2016-01-01", page.Rows)
	}

	// The backfill flags mean nothing to a live ingester.
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"ingest", "--store", "sqlite://" + db, "--year", "2015"}, nil, &o, &e); code == 0 ||
		!strings.Contains(e.String(), "--year needs --file") {
		t.Errorf("live with --year: exit %d: %s", code, e.String())
	}
}
