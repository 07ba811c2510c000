// Package textable prints what both CLIs print as text: aligned tables
// (display width, so Japanese subjects line up), their column headers, and
// the cell helpers (times, sizes, ages, an event's detail). It is shared by
// `mailtrace` (internal/cli) and the kubectl plugin (internal/plugin) and
// imports nothing but the standard library and golang.org/x/text.
package textable

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/width"
)

// The column headers of the tables the commands print. The printers use
// these, and README's recorded outputs are checked against them
// (docs/readme_test.go), so a changed column cannot leave README behind.
var (
	HeadQuery        = []string{"RECEIVED (UTC)", "SENDER", "RECIPIENT", "SUBJECT", "STATUS", "SIZE", "TRACE ID"}
	HeadQueryWide    = []string{"RECEIVED (UTC)", "SENDER", "RECIPIENT", "SUBJECT", "STATUS", "SIZE", "DIRECTION", "FROM IP", "TO IP", "FOLDER", "MESSAGE ID", "TRACE ID"}
	HeadTimeline     = []string{"TIME (UTC)", "EVENT", "RECIPIENT", "SOURCE", "DSN", "DETAIL"}
	HeadPluginRows   = []string{"RECEIVED (UTC)", "SENDER ADDRESS", "RECIPIENT ADDRESS", "SUBJECT", "STATUS"}
	HeadPluginWide   = []string{"RECEIVED (UTC)", "SENDER ADDRESS", "RECIPIENT ADDRESS", "SUBJECT", "STATUS", "SIZE", "DIRECTION", "FROM IP", "TO IP", "FOLDER", "MESSAGE TRACE ID", "MESSAGE ID"}
	HeadPluginDetail = []string{"TIME (UTC)", "EVENT", "SOURCE", "DSN", "DETAIL"}
	// HeadPluginDetailAll is the details timeline of every recipient.
	HeadPluginDetailAll = []string{"TIME (UTC)", "EVENT", "RECIPIENT", "SOURCE", "DSN", "DETAIL"}
	HeadPluginList      = []string{"NAME", "PHASE", "RANGE", "MATCHES", "SHOWN", "REPORT", "REASON", "AGE"}
	// HeadPluginListWide are the columns list -o wide adds.
	HeadPluginListWide = []string{"FROM (UTC)", "TO (UTC)", "CREATED BY"}
)

// Time is the layout of times in tables (UTC unless a --time-zone says).
const Time = "2006-01-02 15:04:05"

// FormatTime is t in a table, in loc (UTC when nil).
func FormatTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(Time)
}

// ZoneName names loc in a column header: its IANA name (Asia/Tokyo), UTC,
// or for the machine's own zone its abbreviation now (CET, JST).
func ZoneName(loc *time.Location) string {
	switch {
	case loc == nil || loc == time.UTC:
		return "UTC"
	case loc.String() == "Local":
		name, _ := time.Now().In(loc).Zone()
		return name
	}
	return loc.String()
}

// InZone is a table's headers with their "(UTC)" naming loc instead.
func InZone(head []string, loc *time.Location) []string {
	out := make([]string, len(head))
	z := "(" + ZoneName(loc) + ")"
	for i, h := range head {
		out[i] = strings.Replace(h, "(UTC)", z, 1)
	}
	return out
}

// Table collects cells and prints them in aligned columns. Alignment uses
// display width, so Japanese subjects line up too; control characters in
// cells (which could move the cursor or forge lines) are replaced by spaces.
type Table struct {
	rows [][]string
}

// Add appends a row (the cells are sanitised in place).
func (t *Table) Add(cells ...string) {
	for i, c := range cells {
		cells[i] = sanitize(c)
	}
	t.rows = append(t.rows, cells)
}

// Len is the number of rows added since the last Reset.
func (t *Table) Len() int { return len(t.rows) }

// Reset forgets the rows.
func (t *Table) Reset() { t.rows = nil }

// Print writes the rows to w, columns aligned.
func (t *Table) Print(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], DisplayWidth(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		b.Reset()
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-DisplayWidth(c)+3))
			}
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, strings.TrimRight(b.String(), " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func runeWidth(r rune) int {
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	if unicode.Is(unicode.Mn, r) {
		return 0
	}
	return 1
}

// DisplayWidth is how many terminal columns s takes.
func DisplayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// Truncate cuts s to at most w display columns, marking the cut with "…".
func Truncate(s string, w int) string {
	if DisplayWidth(s) <= w {
		return s
	}
	n := 0
	for i, r := range s {
		if n+runeWidth(r) > w-1 {
			return s[:i] + "…"
		}
		n += runeWidth(r)
	}
	return s
}

// HumanSize is a message size as the tables show it: 812, 4.2K, 1.3M.
func HumanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10)
}

// EventDetail is what happened to a message, in one text: the event's
// detail, then the relay, the server's response and the address the
// recipient was expanded from, each only when the detail does not say it
// already (the ingester's details quote Postfix's status text, which holds
// the relay and the response).
func EventDetail(detail, relay, response, expandedFrom string) string {
	parts := []string{}
	if detail != "" {
		parts = append(parts, detail)
	}
	if relay != "" && relay != "none" && !strings.Contains(detail, relay) {
		parts = append(parts, "relay="+relay)
	}
	if response != "" && !strings.Contains(detail, response) {
		parts = append(parts, "response: "+response)
	}
	if expandedFrom != "" && !strings.Contains(detail, expandedFrom) {
		parts = append(parts, "via "+expandedFrom)
	}
	return strings.Join(parts, "; ")
}

// OrDash is s, or "-" when s is empty.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// FormatAge is kubectl's short age: 45s, 12m, 5h, 3d.
func FormatAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
