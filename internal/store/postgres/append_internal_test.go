package postgres

import (
	"fmt"
	"testing"
)

// TestDayGroups: Append copies a batch's events and rows into their day's
// partition, one COPY a day whatever the order of the batch's messages
// (in trace ID order, so days interleave when a batch spans midnight).
func TestDayGroups(t *testing.T) {
	for _, c := range []struct {
		days []int64
		want string
	}{
		{nil, "[] []"},
		{[]int64{5, 5, 5}, "[5] []"},
		{[]int64{7, 5, 7, 5, 6}, "[5 6 7] [[1 3] [4] [0 2]]"},
	} {
		days, groups := dayGroups(len(c.days), func(i int) int64 { return c.days[i] })
		if got := fmt.Sprint(days, " ", groups); got != c.want {
			t.Errorf("dayGroups(%v) = %s, want %s", c.days, got, c.want)
		}
	}
}
