package cli

import (
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memLimitRatio is the share of the container's memory limit given to the
// Go runtime as its soft limit (GOMEMLIMIT): the rest is for what the Go
// heap does not count (the embedded SQLite's page cache, the runtime's own
// memory, stacks).
const memLimitRatio = 0.8

// setMemoryLimit sets the Go runtime's soft memory limit to memLimitRatio of
// the limit provider reports (memlimit.FromCgroup: the container's, from
// cgroup v2 or v1; the chart's ingester has 512 Mi), so that the collector
// runs more often as the heap nears it instead of letting it grow to twice
// the live set (GOGC) and be OOM-killed. Nothing when GOMEMLIMIT is set (or
// AUTOMEMLIMIT=off), or when there is no limit. It returns the limit set
// (0: none). automemlimit reads the cgroup files: the Go runtime derives
// GOMAXPROCS from the container's CPU limit but no memory limit.
func setMemoryLimit(provider memlimit.Provider) int64 {
	prev := debug.SetMemoryLimit(-1)
	limit, err := memlimit.Set(memlimit.WithRatio(memLimitRatio), memlimit.WithProvider(provider))
	if err != nil || limit == prev || limit == math.MaxInt64 {
		return 0
	}
	return limit
}

// backfillGCPercent is GOGC for `mailtrace ingest --file` when GOGC is not
// set. A backfill's live heap is bounded (the correlator's messages in
// flight and the records of evicted ones, the batches on their way to the
// store), and at the default of 100 the collector lets the heap grow to
// twice that before it runs: 1M messages that never finish peaked at 254
// to 257 MiB of RSS, at the edge of issue 15's 256 MiB. At 75 the heap
// grows by three quarters of the live set instead, for more collections
// (the helper's count on that log: 41 -> 59 cycles); docs/benchmarks.md
// has the figures. A live ingester keeps Go's default: its container's
// limit sets a soft memory limit (setMemoryLimit) that bounds it.
const backfillGCPercent = 75

// setBackfillGC sets backfillGCPercent unless GOGC is set; it returns the
// percentage set, or 0.
func setBackfillGC() int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	debug.SetGCPercent(backfillGCPercent)
	return backfillGCPercent
}
