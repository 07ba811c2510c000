package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/textable"
)

// Output formats of `query` and `details`.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatCSV   = "csv"
)

// SummaryCSVHeader is the header of a summary CSV: the column names Exchange
// admins know from historical-search reports (PRODUCT.md), then ours,
// mailbox_folder, as a Summary report has them (report.SummaryColumns).
// network_message_id holds mailtrace's message trace ID.
var SummaryCSVHeader = []string{
	"origin_timestamp_utc", "sender_address", "recipient_address", "message_subject", "delivery_status",
	"total_bytes", "message_id", "network_message_id", "original_client_ip", "from_ip", "to_ip", "directionality",
	"mailbox_folder",
}

// RowWriter writes trace rows in one output format.
type RowWriter interface {
	Write(r mailflow.Row) error
	// Flush finishes the output (aligns and prints a table, flushes CSV).
	Flush() error
}

// NewRowWriter writes rows as format says: table, wide, json or csv (times in UTC).
func NewRowWriter(format string, w io.Writer) (RowWriter, error) {
	return NewRowWriterIn(format, w, time.UTC)
}

// NewRowWriterIn is NewRowWriter printing a table's times in loc (JSON and
// CSV stay in UTC, as reports do).
func NewRowWriterIn(format string, w io.Writer, loc *time.Location) (RowWriter, error) {
	switch strings.ToLower(format) {
	case formatTable, "":
		return &rowTable{w: w, loc: loc}, nil
	case formatWide:
		return &rowTable{w: w, wide: true, loc: loc}, nil
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

func (j *jsonLines) Write(r mailflow.Row) error { return j.enc.Encode(r) }
func (j *jsonLines) Flush() error               { return nil }

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
func (c *SummaryCSVWriter) Write(r mailflow.Row) error {
	rec := []string{
		formatCSVTime(r.Received), r.Sender, r.Recipient, r.Subject, string(r.Status),
		strconv.FormatInt(r.Size, 10), r.MessageID, r.MessageTraceID, r.OriginalClientIP, r.FromIP, r.ToIP,
		string(r.Direction), r.Folder,
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

// rowTable prints trace rows as a table; wide adds the direction, the IPs,
// the mailbox folder and the message ID.
type rowTable struct {
	w    io.Writer
	wide bool
	loc  *time.Location
	t    textable.Table
	n    int
}

func (t *rowTable) Write(r mailflow.Row) error {
	if t.n == 0 {
		if t.wide {
			t.t.Add(textable.InZone(textable.HeadQueryWide, t.loc)...)
		} else {
			t.t.Add(textable.InZone(textable.HeadQuery, t.loc)...)
		}
	}
	t.n++
	rcpt := r.Recipient
	if rcpt == "" {
		rcpt = "-"
	}
	recv := textable.FormatTime(r.Received, t.loc)
	if t.wide {
		t.t.Add(recv, r.Sender, rcpt, textable.Truncate(r.Subject, 60), string(r.Status), textable.HumanSize(r.Size),
			string(r.Direction), textable.OrDash(r.FromIP), textable.OrDash(r.ToIP), textable.OrDash(r.Folder), r.MessageID, r.MessageTraceID)
	} else {
		t.t.Add(recv, textable.Truncate(r.Sender, 32), textable.Truncate(rcpt, 32), textable.Truncate(r.Subject, 40), string(r.Status),
			textable.HumanSize(r.Size), r.MessageTraceID)
	}
	// Print in chunks so that `--all` over a large result does not hold
	// everything in memory; columns are aligned within each chunk.
	if t.t.Len() >= 1000 {
		return t.Flush()
	}
	return nil
}

func (t *rowTable) Flush() error {
	err := t.t.Print(t.w)
	t.t.Reset()
	return err
}

// printTimeline prints one message's events for one recipient in time order, times in loc.
func printTimeline(w io.Writer, events []mailflow.Event, loc *time.Location) error {
	var t textable.Table
	t.Add(textable.InZone(textable.HeadTimeline, loc)...)
	for _, e := range events {
		t.Add(textable.FormatTime(e.Time, loc), string(e.Type), textable.OrDash(e.Recipient), textable.OrDash(e.Source), textable.OrDash(e.DSN),
			textable.EventDetail(e.Detail, e.Relay, e.SMTPResponse, e.ExpandedFrom))
	}
	return t.Print(w)
}
