package cli

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// The soft limit is memLimitRatio of the container's, unless GOMEMLIMIT
// says otherwise or there is no limit.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, tc := range []struct {
		name       string
		gomemlimit string
		provider   memlimit.Provider
		want       int64
	}{
		{"a 512 Mi container", "", memlimit.Limit(512 << 20), 429496729},
		{"GOMEMLIMIT set", "300MiB", memlimit.Limit(512 << 20), 0},
		{"no limit", "", func() (uint64, error) { return 0, memlimit.ErrNoLimit }, 0},
		{"no cgroup", "", func() (uint64, error) { return 0, memlimit.ErrNoCgroup }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(prev)
			t.Setenv("GOMEMLIMIT", tc.gomemlimit)
			t.Setenv("AUTOMEMLIMIT", "") // restored after the test...
			os.Unsetenv("AUTOMEMLIMIT")  // ...and unset during it
			if got := setMemoryLimit(tc.provider); got != tc.want {
				t.Errorf("setMemoryLimit = %d, want %d", got, tc.want)
			}
			if tc.want > 0 && debug.SetMemoryLimit(-1) != tc.want {
				t.Errorf("the runtime's limit is %d, want %d", debug.SetMemoryLimit(-1), tc.want)
			}
		})
	}
}

// A backfill collects at backfillGCPercent unless GOGC is set.
func TestSetBackfillGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	if got := setBackfillGC(); got != backfillGCPercent {
		t.Errorf("setBackfillGC = %d, want %d", got, backfillGCPercent)
	}
	if got := debug.SetGCPercent(100); got != backfillGCPercent {
		t.Errorf("the runtime's GOGC is %d, want %d", got, backfillGCPercent)
	}
	t.Setenv("GOGC", "200")
	if got := setBackfillGC(); got != 0 {
		t.Errorf("setBackfillGC with GOGC=200 = %d, want 0", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set, the runtime's is %d, want it left at 100", got)
	}
}
