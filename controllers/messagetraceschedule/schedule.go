package messagetraceschedule

import (
	"sort"
	"time"

	"github.com/robfig/cron/v3"
)

// maxMissedCount caps the count of missed ticks reported after downtime.
const maxMissedCount = 1000

// Decision is what a schedule should do at now. It is a pure function of the
// schedule, what was handled last, and the clock.
type Decision struct {
	// Tick to run now; zero when no tick is due (or the due one is too late).
	Tick time.Time
	// Late is the most recent unhandled tick when it is past the starting
	// deadline: it is recorded as missed and not run.
	Late time.Time
	// Skipped counts the older unhandled ticks that are never run (after
	// downtime only the most recent runs); capped at maxMissedCount.
	Skipped int
	// Next is the first tick after now.
	Next time.Time
}

// Decide finds the most recent tick in (since, now]: since is the last
// handled tick, or the schedule's creation when none was. A tick older than
// deadline (when > 0) is Late instead of due; older unhandled ticks are
// counted as Skipped, never run: no thundering herd after downtime.
func Decide(sched cron.Schedule, since, now time.Time, deadline time.Duration) Decision {
	d := Decision{Next: sched.Next(now)}
	last := MostRecentTick(sched, since, now)
	if last.IsZero() {
		return d
	}
	d.Skipped = countTicks(sched, since, last, maxMissedCount)
	if deadline > 0 && now.Sub(last) > deadline {
		d.Late = last
		return d
	}
	d.Tick = last
	return d
}

// MostRecentTick returns the latest tick t with since < t <= now, or zero.
// It looks back from now in growing steps, so its cost depends on how dense
// the schedule is, not on how long ago since was.
func MostRecentTick(sched cron.Schedule, since, now time.Time) time.Time {
	if !since.Before(now) {
		return time.Time{}
	}
	for _, back := range []time.Duration{time.Hour, 25 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour} {
		from := now.Add(-back)
		if from.Before(since) {
			from = since
		}
		t := sched.Next(from)
		if t.IsZero() || t.After(now) {
			if from.Equal(since) {
				return time.Time{}
			}
			continue
		}
		for {
			n := sched.Next(t)
			if n.IsZero() || n.After(now) {
				return t
			}
			t = n
		}
	}
	return time.Time{}
}

// countTicks counts the ticks in (since, before), at most limit.
func countTicks(sched cron.Schedule, since, before time.Time, limit int) int {
	n := 0
	for t := sched.Next(since); !t.IsZero() && t.Before(before) && n < limit; t = sched.Next(t) {
		n++
	}
	return n
}

// RunState is where one run of a schedule stands.
type RunState int

// Run states.
const (
	RunActive RunState = iota
	RunSucceeded
	RunFailed
)

// Run is one child of a schedule, as the pruning decision sees it.
type Run struct {
	Name  string
	Tick  time.Time
	State RunState
}

// ToPrune returns the names of finished runs beyond the history limits,
// oldest first. Active runs are never pruned, and neither is the newest
// succeeded run (even with a limit of 0): it is the schedule's last answer.
func ToPrune(runs []Run, successfulLimit, failedLimit int) []string {
	sorted := append([]Run(nil), runs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if !sorted[i].Tick.Equal(sorted[j].Tick) {
			return sorted[i].Tick.After(sorted[j].Tick)
		}
		return sorted[i].Name > sorted[j].Name
	})
	successfulLimit = max(successfulLimit, 1)
	var out []string
	var succeeded, failed int
	for _, r := range sorted {
		switch r.State {
		case RunSucceeded:
			succeeded++
			if succeeded > successfulLimit {
				out = append(out, r.Name)
			}
		case RunFailed:
			failed++
			if failed > failedLimit {
				out = append(out, r.Name)
			}
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
