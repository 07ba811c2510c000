package cli

import (
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memLimitRatio is the share of the container's memory limit given to the
// Go runtime as its soft limit (GOMEMLIMIT): the rest is for what the Go
// heap does not count (the embedded SQLite's page cache, the runtime's own
// memory, stacks).
const memLimitRatio = 0.8

// setMemoryLimit sets the Go runtime's soft memory limit to memLimitRatio of
// the memory limit of the process's cgroup (the container's: the chart's
// ingester has 512 Mi), so that the collector runs more often as the heap
// nears it instead of letting it grow to twice the live set (GOGC) and be
// OOM-killed. Nothing when GOMEMLIMIT is set, or when there is no limit. It
// returns the limit set (0: none).
func setMemoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, ok := cgroupMemoryLimit(os.DirFS("/"))
	if !ok {
		return 0
	}
	soft := int64(float64(limit) * memLimitRatio)
	debug.SetMemoryLimit(soft)
	return soft
}

// cgroupMemoryLimit returns the memory limit of the process's cgroup, read
// from root (the file system's root): cgroup v2's memory.max (at the root of
// the cgroup namespace, as in a container, or under the path
// /proc/self/cgroup names), else v1's memory.limit_in_bytes.
func cgroupMemoryLimit(root fs.FS) (int64, bool) {
	var paths []string
	paths = append(paths, "sys/fs/cgroup/memory.max")
	if b, err := fs.ReadFile(root, "proc/self/cgroup"); err == nil {
		for line := range strings.Lines(string(b)) {
			line = strings.TrimSpace(line)
			if p, ok := strings.CutPrefix(line, "0::/"); ok && p != "" {
				paths = append(paths, "sys/fs/cgroup/"+p+"/memory.max")
			}
		}
	}
	paths = append(paths, "sys/fs/cgroup/memory/memory.limit_in_bytes")
	for _, p := range paths {
		b, err := fs.ReadFile(root, p)
		if err != nil {
			continue
		}
		return parseCgroupLimit(string(b))
	}
	return 0, false
}

// noCgroupLimit: cgroup v1 says "no limit" with a number near 2^63 (the
// largest multiple of the page size).
const noCgroupLimit = 1 << 62

// parseCgroupLimit reads a memory.max or memory.limit_in_bytes: a number of
// bytes, or "max" (no limit).
func parseCgroupLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= noCgroupLimit {
		return 0, false
	}
	return n, true
}
