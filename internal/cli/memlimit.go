package cli

import (
	"math"
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
