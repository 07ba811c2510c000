package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/width"

	"github.com/mailtrace/mailtrace/internal/store"
)

// Output formats of `query` and `details`.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatCSV   = "csv"
)

// SummaryCSVHeader is the header of a summary CSV: the column names Exchange
// admins know from historical-search reports (PRODUCT.md). network_message_id
// holds mailtrace's message trace ID.
var SummaryCSVHeader = []string{
	"origin_timestamp_utc", "sender_address", "recipient_address", "message_subject", "delivery_status",
	"total_bytes", "message_id", "network_message_id", "original_client_ip", "from_ip", "to_ip", "directionality",
}

// rowWriter writes trace rows in one output format.
type rowWriter interface {
	Write(r store.Row) error
	// Flush finishes the output (aligns and prints a table, flushes CSV).
	Flush() error
}

func newRowWriter(format string, w io.Writer) (rowWriter, error) {
	switch strings.ToLower(format) {
	case formatTable, "":
		return &rowTable{w: w}, nil
	case formatWide:
		return &rowTable{w: w, wide: true}, nil
	case formatJSON:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // Message-IDs keep their <angle brackets>
		return &jsonLines{enc: enc}, nil
	case formatCSV:
		return NewSummaryCSVWriter(w)
	}
	return nil, fmt.Errorf("unknown output format %q: use table, wide, json or csv", format)
}

// jsonLines writes one JSON object per line (NDJSON), so that output of any
// size streams and each line can be processed on its own (jq, grep).
type jsonLines struct{ enc *json.Encoder }

func (j *jsonLines) Write(r store.Row) error { return j.enc.Encode(r) }
func (j *jsonLines) Flush() error            { return nil }

// SummaryCSVWriter writes trace rows as a summary CSV report: UTF-8, a header
// row, RFC 4180 quoting, and cells a spreadsheet would run as a formula
// neutralised with a leading single quote.
type SummaryCSVWriter struct {
	w *csv.Writer
}

// NewSummaryCSVWriter writes the header row and returns the writer.
func NewSummaryCSVWriter(w io.Writer) (*SummaryCSVWriter, error) {
	c := &SummaryCSVWriter{w: csv.NewWriter(w)}
	if err := c.w.Write(SummaryCSVHeader); err != nil {
		return nil, err
	}
	return c, nil
}

// Write writes one row.
func (c *SummaryCSVWriter) Write(r store.Row) error {
	rec := []string{
		formatCSVTime(r.Received), r.Sender, r.Recipient, r.Subject, string(r.Status),
		strconv.FormatInt(r.Size, 10), r.MessageID, r.MessageTraceID, r.OriginalClientIP, r.FromIP, r.ToIP,
		string(r.Direction),
	}
	for i := range rec {
		rec[i] = NeutralizeCSVCell(rec[i])
	}
	return c.w.Write(rec)
}

// Flush flushes buffered rows and reports any write error.
func (c *SummaryCSVWriter) Flush() error {
	c.w.Flush()
	return c.w.Error()
}

func formatCSVTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// NeutralizeCSVCell prefixes a single quote to a cell that a spreadsheet
// would otherwise treat as a formula: one starting with =, +, -, @, a tab or
// a carriage return. (RFC 4180 quoting is the CSV writer's job.)
func NeutralizeCSVCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// table collects cells and prints them in aligned columns. Alignment uses
// display width, so Japanese subjects line up too; control characters in
// cells (which could move the cursor or forge lines) are replaced by spaces.
type table struct {
	rows [][]string
}

func (t *table) add(cells ...string) {
	for i, c := range cells {
		cells[i] = sanitize(c)
	}
	t.rows = append(t.rows, cells)
}

func (t *table) print(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		b.Reset()
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(c)+3))
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

func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// truncate cuts s to at most w display columns, marking the cut with "…".
func truncate(s string, w int) string {
	if displayWidth(s) <= w {
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

const tableTime = "2006-01-02 15:04:05"

// rowTable prints trace rows as a table; wide adds the IPs, message ID and direction.
type rowTable struct {
	w    io.Writer
	wide bool
	t    table
	n    int
}

func (t *rowTable) Write(r store.Row) error {
	if t.n == 0 {
		if t.wide {
			t.t.add(slices.Clone(headQueryWide)...)
		} else {
			t.t.add(slices.Clone(headQuery)...)
		}
	}
	t.n++
	rcpt := r.Recipient
	if rcpt == "" {
		rcpt = "-"
	}
	recv := r.Received.UTC().Format(tableTime)
	if t.wide {
		t.t.add(recv, r.Sender, rcpt, truncate(r.Subject, 60), string(r.Status), humanSize(r.Size),
			string(r.Direction), orDash(r.FromIP), orDash(r.ToIP), r.MessageID, r.MessageTraceID)
	} else {
		t.t.add(recv, truncate(r.Sender, 32), truncate(rcpt, 32), truncate(r.Subject, 40), string(r.Status),
			humanSize(r.Size), r.MessageTraceID)
	}
	// Print in chunks so that `--all` over a large result does not hold
	// everything in memory; columns are aligned within each chunk.
	if len(t.t.rows) >= 1000 {
		return t.Flush()
	}
	return nil
}

func (t *rowTable) Flush() error {
	err := t.t.print(t.w)
	t.t.rows = nil
	return err
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10)
}

// printTimeline prints one message's events for one recipient in time order.
func printTimeline(w io.Writer, events []store.Event) error {
	var t table
	t.add(slices.Clone(headTimeline)...)
	for _, e := range events {
		t.add(e.Time.UTC().Format(tableTime), string(e.Type), orDash(e.Recipient), orDash(e.Source), orDash(e.DSN),
			eventDetail(e.Detail, e.Relay, e.SMTPResponse, e.ExpandedFrom))
	}
	return t.print(w)
}

// eventDetail is what happened to a message, in one text: the event's
// detail, then the relay, the server's response and the address the
// recipient was expanded from, each only when the detail does not say it
// already (the ingester's details quote Postfix's status text, which holds
// the relay and the response).
func eventDetail(detail, relay, response, expandedFrom string) string {
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
