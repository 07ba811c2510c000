package cli

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// backfillFlags are what only `mailtrace ingest --file` has.
type backfillFlags struct {
	year      int
	retention time.Duration
}

// yearReference is the reference time that places the first RFC 3164 line
// of a backfill (a timestamp without a year) in year: the last second of
// it, so the first line falls in year and later lines follow it (a log that
// runs into January goes on into the next year). Zero year: no reference
// (the latest year that does not put the first line in the future).
func yearReference(year int, loc *time.Location, now time.Time) (time.Time, error) {
	if year == 0 {
		return time.Time{}, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	if year < 1970 || year > now.In(loc).Year() {
		return time.Time{}, fmt.Errorf("--year %d: a log's year is between 1970 and this year (%d)", year, now.In(loc).Year())
	}
	return time.Date(year, 12, 31, 23, 59, 59, 0, loc), nil
}

// checkRetention refuses a backfill whose oldest line (a file's first: a
// log is in time order) was received before the retention window: the
// manager would prune it within the hour, after the user was told it was
// stored. Files whose first line is not a syslog line are left to the
// ingest, which counts what it does not understand.
func checkRetention(paths []string, ref time.Time, loc *time.Location, retention time.Duration, now time.Time) error {
	if retention <= 0 {
		return nil
	}
	cutoff := now.Add(-retention)
	for _, p := range paths {
		t, hasYear, ok, err := firstLineTime(p, ref, loc)
		if err != nil {
			return err
		}
		if ok && t.Before(cutoff) {
			hint := ""
			if ref.IsZero() && !hasYear {
				hint = "; if the log is of another year, say which with --year"
			}
			return fmt.Errorf("%s starts on %s, before the retention window of %s (%s, --retention as the manager's): the manager would prune it within the hour. Ingest only its last %s, or raise --retention here and on the manager%s",
				p, t.Format("2006-01-02 15:04 MST"), days(retention), cutoff.Format("2006-01-02"), days(retention), hint)
		}
	}
	return nil
}

// firstLineTime returns the time of the first syslog line of a log file
// (plain or gzip), placed as the ingest places it, and whether the line
// stated its year.
func firstLineTime(path string, ref time.Time, loc *time.Location) (t time.Time, hasYear, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false, false, err
	}
	defer f.Close()
	r, closeLog, err := ingest.LogReader(f)
	if err != nil {
		return time.Time{}, false, false, fmt.Errorf("%s: %w", path, err)
	}
	defer closeLog()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	p := syslog.Parser{Reference: ref, Location: loc}
	for n := 0; sc.Scan() && n < 100; n++ {
		if l, err := p.Parse(sc.Text()); err == nil {
			return l.Time, l.HasYear, true, nil
		}
	}
	return time.Time{}, false, false, nil
}

// days prints a retention as a mail admin thinks of it: "90d", else as Go does.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// backfillOnly refuses the backfill flags without --file: a live ingester
// places lines against the wall clock, and the manager prunes.
func backfillOnly(cmd interface{ Flags() *pflag.FlagSet }) error {
	for _, name := range []string{"year", "retention"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s needs --file: it is for backfills of log files", name)
		}
	}
	return nil
}
