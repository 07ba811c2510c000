package messagetraceschedule

import (
	"reflect"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

func mustSchedule(t *testing.T, spec, tz string) cron.Schedule {
	t.Helper()
	s := v1alpha1.MessageTraceScheduleSpec{Schedule: spec, TimeZone: tz}
	c, err := s.CronSchedule()
	if err != nil {
		t.Fatal(err)
	}
	return NewWallClock(c)
}

func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The ticks of schedules across both DST changes of 2026 in two zones, in
// UTC. Like classic cron: a wall time skipped by spring-forward runs at the
// change, a wall time repeated by fall-back runs once, hourly schedules keep
// every absolute hour.
func TestTicksAcrossDST(t *testing.T) {
	cases := []struct {
		name, spec, tz, from string
		want                 []string
	}{
		{"Berlin daily 07:00 over spring-forward: 06:00Z then 05:00Z", "0 7 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T06:00:00Z", "2026-03-29T05:00:00Z", "2026-03-30T05:00:00Z"}},
		{"Berlin daily 02:30 on spring-forward day runs at the change (03:00 CEST)", "30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"Berlin daily 02:30 on fall-back day runs once (first 02:30, CEST)", "30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"Berlin hourly keeps every absolute hour at fall-back", "0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
		{"Berlin hourly at spring-forward: 01:00 CET then 03:00 CEST, one hour apart", "0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z",
			[]string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
		{"Berlin Mondays 07:00 across the change", "0 7 * * 1", "Europe/Berlin", "2026-03-20T00:00:00Z",
			[]string{"2026-03-23T06:00:00Z", "2026-03-30T05:00:00Z"}},
		{"New York daily 02:30 on spring-forward day runs at 03:00 EDT", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"New York daily 01:30 on fall-back day runs once (EDT)", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"New York daily 09:00 across fall-back: 13:00Z then 14:00Z", "0 9 * * *", "America/New_York", "2026-10-31T00:00:00Z",
			[]string{"2026-10-31T13:00:00Z", "2026-11-01T14:00:00Z"}},
		{"Berlin Sundays 02:30: the spring-forward Sunday runs at the change", "30 2 * * 0", "Europe/Berlin", "2026-03-21T00:00:00Z",
			[]string{"2026-03-22T01:30:00Z", "2026-03-29T01:00:00Z", "2026-04-05T00:30:00Z"}},
		{"Berlin Mondays 02:30 are not pulled into the Sunday gap", "30 2 * * 1", "Europe/Berlin", "2026-03-27T00:00:00Z",
			[]string{"2026-03-30T00:30:00Z"}},
		{"New York 01:00 and 01:30 on fall-back day run once each", "0,30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z",
			[]string{"2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:00:00Z"}},
		{"UTC is untouched", "30 2 * * *", "UTC", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T02:30:00Z", "2026-03-29T02:30:00Z"}},
		{"@daily in Berlin", "@daily", "Europe/Berlin", "2026-03-28T12:00:00Z",
			[]string{"2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustSchedule(t, c.spec, c.tz)
			var got []string
			for n := ts(t, c.from); len(got) < len(c.want); {
				n = s.Next(n)
				got = append(got, n.UTC().Format(time.RFC3339))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ticks %v, want %v", got, c.want)
			}
		})
	}
}

// Decide on a fake clock: due ticks, downtime (only the most recent missed
// tick runs), the starting deadline, and DST.
func TestDecide(t *testing.T) {
	cases := []struct {
		name, spec, tz   string
		since, now       string
		deadline         time.Duration
		tick, late, next string
		skipped          int
	}{
		{name: "before the first tick nothing is due", spec: "0 * * * *", tz: "UTC",
			since: "2026-05-01T10:05:00Z", now: "2026-05-01T10:59:59Z", next: "2026-05-01T11:00:00Z"},
		{name: "exactly at the tick it is due", spec: "0 * * * *", tz: "UTC",
			since: "2026-05-01T10:05:00Z", now: "2026-05-01T11:00:00Z", tick: "2026-05-01T11:00:00Z", next: "2026-05-01T12:00:00Z"},
		{name: "a handled tick is not due again", spec: "0 * * * *", tz: "UTC",
			since: "2026-05-01T11:00:00Z", now: "2026-05-01T11:00:30Z", next: "2026-05-01T12:00:00Z"},
		{name: "after 5h down only the most recent tick runs", spec: "0 * * * *", tz: "UTC",
			since: "2026-05-01T06:00:00Z", now: "2026-05-01T11:20:00Z", tick: "2026-05-01T11:00:00Z", skipped: 4, next: "2026-05-01T12:00:00Z"},
		{name: "within the deadline it runs late", spec: "0 * * * *", tz: "UTC", deadline: 30 * time.Minute,
			since: "2026-05-01T10:00:00Z", now: "2026-05-01T11:29:00Z", tick: "2026-05-01T11:00:00Z", next: "2026-05-01T12:00:00Z"},
		{name: "past the deadline it is missed, not run", spec: "0 * * * *", tz: "UTC", deadline: 30 * time.Minute,
			since: "2026-05-01T10:00:00Z", now: "2026-05-01T11:31:00Z", late: "2026-05-01T11:00:00Z", next: "2026-05-01T12:00:00Z"},
		{name: "a month down with a minutely schedule: one run, count capped", spec: "* * * * *", tz: "UTC",
			since: "2026-04-01T00:00:00Z", now: "2026-05-01T00:00:30Z", tick: "2026-05-01T00:00:00Z", skipped: maxMissedCount, next: "2026-05-01T00:01:00Z"},
		{name: "weekly, down for three weeks", spec: "0 7 * * 1", tz: "Europe/Berlin",
			since: "2026-03-02T06:00:00Z", now: "2026-03-24T00:00:00Z", tick: "2026-03-23T06:00:00Z", skipped: 2, next: "2026-03-30T05:00:00Z"},
		{name: "Berlin 02:30 on spring-forward day is due at 03:00 CEST", spec: "30 2 * * *", tz: "Europe/Berlin",
			since: "2026-03-28T01:30:00Z", now: "2026-03-29T01:00:00Z", tick: "2026-03-29T01:00:00Z", next: "2026-03-30T00:30:00Z"},
		{name: "New York 01:30 on fall-back day is not due again an hour later", spec: "30 1 * * *", tz: "America/New_York",
			since: "2026-11-01T05:30:00Z", now: "2026-11-01T06:45:00Z", next: "2026-11-02T06:30:00Z"},
		{name: "created after the last tick: nothing is due", spec: "0 7 * * *", tz: "UTC",
			since: "2026-05-01T07:00:01Z", now: "2026-05-01T08:00:00Z", next: "2026-05-02T07:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustSchedule(t, c.spec, c.tz)
			d := Decide(s, ts(t, c.since), ts(t, c.now), c.deadline)
			f := func(v time.Time) string {
				if v.IsZero() {
					return ""
				}
				return v.UTC().Format(time.RFC3339)
			}
			if f(d.Tick) != c.tick || f(d.Late) != c.late || f(d.Next) != c.next || d.Skipped != c.skipped {
				t.Errorf("tick %q late %q next %q skipped %d; want %q %q %q %d",
					f(d.Tick), f(d.Late), f(d.Next), d.Skipped, c.tick, c.late, c.next, c.skipped)
			}
		})
	}
}

func TestToPrune(t *testing.T) {
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	runs := func(states ...RunState) []Run {
		var out []Run
		for i, s := range states { // oldest first
			out = append(out, Run{Name: string(rune('a' + i)), Tick: base.Add(time.Duration(i) * time.Hour), State: s})
		}
		return out
	}
	S, F, A := RunSucceeded, RunFailed, RunActive
	cases := []struct {
		name       string
		runs       []Run
		succ, fail int
		want       []string
	}{
		{"under the limits nothing goes", runs(S, F, S, A), 10, 3, nil},
		{"oldest succeeded beyond the limit go first", runs(S, S, S, S), 2, 3, []string{"a", "b"}},
		{"failed runs have their own limit", runs(F, S, F, F, S, F), 10, 2, []string{"a", "c"}},
		{"limit 0 still keeps the newest succeeded", runs(S, S, F), 0, 0, []string{"a", "c"}},
		{"active runs are never pruned", runs(A, A, S), 0, 0, nil},
		{"mixed", runs(S, F, S, F, S, A), 1, 1, []string{"a", "b", "c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ToPrune(c.runs, c.succ, c.fail); !reflect.DeepEqual(got, c.want) {
				t.Errorf("ToPrune = %v, want %v", got, c.want)
			}
		})
	}
}

func TestRunNameIsUnixMinutes(t *testing.T) {
	if got := v1alpha1.RunName("daily", ts(t, "2026-05-01T07:00:00Z")); got != "daily-29626980" {
		t.Errorf("RunName = %s", got)
	}
}

func TestInvalidSchedules(t *testing.T) {
	for _, c := range []struct{ spec, tz string }{
		{"0 7 * *", "UTC"}, {"61 * * * *", "UTC"}, {"@every 1h", "UTC"}, {"0 7 * * *", "Mars/Olympus"}, {"0 7 * * *", "Local"},
		{"CRON_TZ=UTC 0 7 * * *", "UTC"},
	} {
		s := v1alpha1.MessageTraceScheduleSpec{Schedule: c.spec, TimeZone: c.tz}
		if _, err := s.CronSchedule(); err == nil {
			t.Errorf("%q in %q: no error", c.spec, c.tz)
		}
	}
}
