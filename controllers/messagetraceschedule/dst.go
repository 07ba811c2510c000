package messagetraceschedule

import (
	"time"

	"github.com/robfig/cron/v3"
)

// WallClock wraps a cron schedule read in a time zone so that it behaves
// like classic cron across DST changes, where the library alone does not:
//   - spring forward: a tick whose wall time falls in the skipped hour
//     (02:30 in Europe/Berlin on the last Sunday of March) runs at the
//     change (03:00 CEST) instead of not at all;
//   - fall back: a wall time that occurs twice (01:30 in America/New_York on
//     the first Sunday of November) runs once, at its first occurrence.
//
// Schedules in UTC or fixed zones are unchanged, and so are schedules that
// run every hour (hour field *): like classic cron, they keep running each
// absolute hour, so hourly windows still tile time.
type WallClock struct {
	Spec *cron.SpecSchedule
}

// NewWallClock wraps s when it is a *cron.SpecSchedule; other schedules are returned as they are.
func NewWallClock(s cron.Schedule) cron.Schedule {
	if spec, ok := s.(*cron.SpecSchedule); ok {
		return WallClock{Spec: spec}
	}
	return s
}

// Next returns the first tick after t.
func (w WallClock) Next(t time.Time) time.Time {
	n := w.Spec.Next(t)
	if w.Spec.Hour&allHours == allHours {
		return n
	}
	for !n.IsZero() && w.repeated(n) {
		n = w.Spec.Next(n)
	}
	if g := w.gapTick(t, n); !g.IsZero() {
		return g
	}
	return n
}

const allHours = 1<<24 - 1

// repeated reports whether n's wall time already occurred earlier (the
// second pass through a fall-back hour).
func (w WallClock) repeated(n time.Time) bool {
	loc := w.Spec.Location
	nw := n.In(loc)
	for _, d := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		e := n.Add(-d).In(loc)
		if e.Hour() == nw.Hour() && e.Minute() == nw.Minute() && e.Day() == nw.Day() {
			return true
		}
	}
	return false
}

// gapTick returns the first spring-forward change in (t, n) whose skipped
// wall times hold a tick, or zero.
func (w WallClock) gapTick(t, n time.Time) time.Time {
	loc := w.Spec.Location
	end := n
	if end.IsZero() {
		end = t.Add(5 * 366 * 24 * time.Hour)
	}
	cursor := t
	for {
		ch := nextChange(cursor, end, loc)
		if ch.IsZero() {
			return time.Time{}
		}
		_, before := ch.Add(-time.Minute).In(loc).Zone()
		_, after := ch.In(loc).Zone()
		if after > before { // the wall clock jumped forward: [from, to) never happened
			w0 := ch.Add(-time.Minute).In(loc) // the last wall minute before the jump
			wall := time.Date(w0.Year(), w0.Month(), w0.Day(), w0.Hour(), w0.Minute(), 0, 0, time.UTC).Add(time.Minute)
			utc := *w.Spec
			utc.Location = time.UTC
			if m := utc.Next(wall.Add(-time.Second)); !m.IsZero() && m.Before(wall.Add(time.Duration(after-before)*time.Second)) {
				return ch
			}
		}
		cursor = ch
	}
}

// nextChange finds the first instant in (from, to) (to the minute) whose
// zone offset differs from the one before it, or zero.
func nextChange(from, to time.Time, loc *time.Location) time.Time {
	_, off := from.In(loc).Zone()
	if _, o := to.Add(-time.Nanosecond).In(loc).Zone(); o == off {
		// Offsets can change and change back (two transitions) between far
		// apart ticks; look at each month.
		for m := from.Add(31 * 24 * time.Hour); m.Before(to); m = m.Add(31 * 24 * time.Hour) {
			if _, o := m.In(loc).Zone(); o != off {
				return nextChange(from, m.Add(time.Nanosecond), loc)
			}
		}
		return time.Time{}
	}
	// Offsets change on whole minutes: search minutes with
	// offset(lo) == off and offset(hi) != off.
	lo, hi := from.Truncate(time.Minute), to.Add(-time.Nanosecond).Truncate(time.Minute)
	if _, o := hi.In(loc).Zone(); o == off {
		return time.Time{}
	}
	for hi.Sub(lo) > time.Minute {
		mid := lo.Add((hi.Sub(lo) / 2).Truncate(time.Minute))
		if _, o := mid.In(loc).Zone(); o == off {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}
