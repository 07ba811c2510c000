package cli

import (
	"testing"
	"testing/fstest"
)

func TestParseCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"536870912\n", 536870912, true},
		{"max\n", 0, false},
		{"9223372036854771712\n", 0, false}, // cgroup v1's "no limit"
		{"", 0, false},
		{"0", 0, false},
		{"garbage", 0, false},
	} {
		if got, ok := parseCgroupLimit(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("parseCgroupLimit(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want int64
		ok   bool
	}{
		{"v2, in a container", fstest.MapFS{"sys/fs/cgroup/memory.max": file("536870912\n"), "proc/self/cgroup": file("0::/\n")}, 536870912, true},
		{"v2, no limit", fstest.MapFS{"sys/fs/cgroup/memory.max": file("max\n")}, 0, false},
		{"v2, under the process's path", fstest.MapFS{
			"proc/self/cgroup":                          file("0::/kubepods/pod1/c1\n"),
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": file("268435456\n"),
		}, 268435456, true},
		{"v1", fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": file("1073741824\n"), "proc/self/cgroup": file("4:memory:/\n")}, 1073741824, true},
		{"v1, no limit", fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n")}, 0, false},
		{"no cgroup file system", fstest.MapFS{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := cgroupMemoryLimit(tc.fs); got != tc.want || ok != tc.ok {
				t.Errorf("= %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
