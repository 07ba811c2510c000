package ingestbench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
)

// The benchmarks' generated log means what it says: every message gets two
// Delivered rows (one after a deferral) and at least 3 events, and the
// unfinished log leaves every message queryable, in GettingStatus.
func TestDenseLogMeansWhatItSays(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish bool
		rows   int
		status mailflow.Status
	}{
		{"finished", true, 2 * 300, mailflow.StatusDelivered},
		{"unfinished", false, 300, mailflow.StatusGettingStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "dense.log.gz")
			lines := denseLog(t, log, 300, 100, tc.finish)
			url := "sqlite://" + filepath.Join(t.TempDir(), "d.db")
			r := run(t, binary(t), log, url)
			if r.messages != 300 || (tc.finish && (lines != 300*7 || r.events < 3*300)) {
				t.Fatalf("lines %d, events %d, messages %d", lines, r.events, r.messages)
			}
			st, err := storeopen.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			q := mailflow.Query{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)}
			c, err := st.Count(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if c.Total != int64(tc.rows) || c.ByStatus[tc.status] != int64(tc.rows) {
				t.Errorf("counts %+v, want %d rows %s", c, tc.rows, tc.status)
			}
		})
	}
}
