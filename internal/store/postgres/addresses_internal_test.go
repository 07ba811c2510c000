package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// A mid-string wildcard whose candidates were read already is compared
// with them, or, when they are more than maxCandidates, with the rows'
// addresses (LIKE): probing the index for each would cost more.
func TestMidWildcardCandidatesOrLike(t *testing.T) {
	d0 := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	q := mailflow.Query{Start: d0, End: d0.Add(time.Hour), Senders: []string{"*e*"}}
	key := midKey(roleSender, []string{"%e%"})
	for _, c := range []struct {
		n          int
		want, lack string
	}{
		{10, "sender = ANY(ARRAY(SELECT unnest($3::text[])))", "LIKE"},
		{maxCandidates, "sender = ANY(ARRAY(SELECT unnest($3::text[])))", "LIKE"},
		{maxCandidates + 1, `(sender LIKE $3 ESCAPE '\')`, "addresses"},
	} {
		cands := make([]string, c.n)
		for i := range cands {
			cands[i] = fmt.Sprintf("e%d@example.com", i)
		}
		sqlText, _, err := traceSQLWith(q, "", 10, map[string][]string{key: cands})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sqlText, c.want) || strings.Contains(sqlText, c.lack) {
			t.Errorf("%d candidates: want %s and no %s in\n%s", c.n, c.want, c.lack, sqlText)
		}
	}
}
