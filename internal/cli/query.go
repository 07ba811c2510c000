package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
)

// defaultSince is the window traced when no time flag is given (PRODUCT.md: the last 2 days).
const defaultSince = 48 * time.Hour

// pageSize is how many rows one store call returns with --all.
const pageSize = 1000

// queryFlags mirror every filter of a trace.
type queryFlags struct {
	store        string
	senders      []string
	recipients   []string
	start, end   string
	since        string
	statuses     []string
	messageID    string
	traceID      string
	direction    string
	originalIP   string
	fromIP       string
	toIP         string
	subject      string
	subjectMatch string
	limit        int
	all          bool
	output       string
}

func newQueryCommand() *cobra.Command {
	var f queryFlags
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Run a message trace straight against a trace store",
		Long: `Run a message trace against a trace store and print one row per
(message, recipient), newest first. Every filter is optional; filters combine
with AND, repeated values of one filter with OR. Without a time flag the last
48 hours are traced.

Output formats (-o):
  table  aligned columns (default); a footer on stderr tells how many rows matched
  wide   the table plus direction, IPs and Message-ID
  json   one JSON object per row, one per line (NDJSON)
  csv    the columns of Exchange's historical-search summary CSV, RFC 4180,
         formulas neutralised`,
		Example: `  mailtrace query --store sqlite://.demo/mailtrace.db --since 7d --status Failed
  mailtrace query --sender '*@example.com' --recipient '*@partner.example' --since 24h
  mailtrace query --subject invoice --subject-match StartsWith -o csv --all > report.csv
  mailtrace query --original-client-ip 203.0.113.0/24 --direction Inbound -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runQuery(cmd.Context(), f, time.Now(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	addStoreFlag(cmd, &f.store)
	fl.StringArrayVar(&f.senders, "sender", nil, "sender address; * is a wildcard (*@example.com); repeatable")
	fl.StringArrayVar(&f.recipients, "recipient", nil, "recipient address; * is a wildcard (user@*); repeatable")
	fl.StringVar(&f.start, "start", "", "start of the range, RFC 3339 (2026-03-01T00:00:00Z) or a date (2026-03-01); inclusive")
	fl.StringVar(&f.end, "end", "", "end of the range, RFC 3339 or a date; exclusive (default now)")
	fl.StringVar(&f.since, "since", "", "relative range ending now, such as 48h or 7d (default 48h; at most 90d)")
	fl.StringSliceVar(&f.statuses, "status", nil, "delivery status: "+statusList()+"; repeatable or comma-separated")
	fl.StringVar(&f.messageID, "message-id", "", "Message-ID header, with or without angle brackets")
	fl.StringVar(&f.traceID, "trace-id", "", "message trace ID (mailtrace's own id of one message)")
	fl.StringVar(&f.direction, "direction", "", "Inbound, Outbound, Internal or All")
	fl.StringVar(&f.originalIP, "original-client-ip", "", "IP or CIDR that first handed the message to the organisation")
	fl.StringVar(&f.fromIP, "from-ip", "", "IP or CIDR the message was received from")
	fl.StringVar(&f.toIP, "to-ip", "", "IP or CIDR the message was sent to")
	fl.StringVar(&f.subject, "subject", "", "subject text (case-insensitive)")
	fl.StringVar(&f.subjectMatch, "subject-match", "", "how --subject compares: Contains (default), StartsWith or EndsWith")
	fl.IntVar(&f.limit, "limit", 500, "most rows to print")
	fl.BoolVar(&f.all, "all", false, "print every matching row, page by page (ignores --limit)")
	fl.StringVarP(&f.output, "output", "o", formatTable, "output format: table, wide, json or csv")
	cmd.AddCommand(newDetailsCommand())
	return cmd
}

func statusList() string {
	s := make([]string, len(store.AllStatuses))
	for i, st := range store.AllStatuses {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// buildQuery turns the flags into a store query, relative to now.
func buildQuery(f queryFlags, now time.Time) (store.Query, error) {
	var q store.Query
	now = now.UTC()
	switch {
	case f.since != "" && (f.start != "" || f.end != ""):
		return q, errors.New("--since cannot be combined with --start or --end")
	case f.since != "":
		d, err := storeopen.ParseDuration(f.since)
		if err != nil {
			return q, fmt.Errorf("--since: %w", err)
		}
		if d <= 0 {
			return q, fmt.Errorf("--since: %s is not a positive duration", f.since)
		}
		q.Start, q.End = now.Add(-d), now
	default:
		q.End = now
		if f.end != "" {
			t, err := parseTime(f.end)
			if err != nil {
				return q, fmt.Errorf("--end: %w", err)
			}
			q.End = t
		}
		q.Start = q.End.Add(-defaultSince)
		if f.start != "" {
			t, err := parseTime(f.start)
			if err != nil {
				return q, fmt.Errorf("--start: %w", err)
			}
			q.Start = t
		}
	}
	q.Senders = f.senders
	q.Recipients = f.recipients
	for _, s := range f.statuses {
		st, ok := parseStatus(s)
		if !ok {
			return q, fmt.Errorf("--status: %q is not a delivery status (use %s)", s, statusList())
		}
		q.Statuses = append(q.Statuses, st)
	}
	q.MessageID = strings.TrimSpace(f.messageID)
	q.MessageTraceID = strings.TrimSpace(f.traceID)
	if f.direction != "" {
		d, ok := matchFold(f.direction, store.DirectionInbound, store.DirectionOutbound, store.DirectionInternal, store.DirectionAll)
		if !ok {
			return q, fmt.Errorf("--direction: %q is not Inbound, Outbound, Internal or All", f.direction)
		}
		q.Direction = d
	}
	var err error
	if q.OriginalClientIP, err = store.ParsePrefix(strings.TrimSpace(f.originalIP)); err != nil {
		return q, fmt.Errorf("--original-client-ip: %w", err)
	}
	if q.FromIP, err = store.ParsePrefix(strings.TrimSpace(f.fromIP)); err != nil {
		return q, fmt.Errorf("--from-ip: %w", err)
	}
	if q.ToIP, err = store.ParsePrefix(strings.TrimSpace(f.toIP)); err != nil {
		return q, fmt.Errorf("--to-ip: %w", err)
	}
	q.Subject = f.subject
	if f.subjectMatch != "" {
		if f.subject == "" {
			return q, errors.New("--subject-match needs --subject")
		}
		m, ok := matchFold(f.subjectMatch, store.SubjectContains, store.SubjectStartsWith, store.SubjectEndsWith)
		if !ok {
			return q, fmt.Errorf("--subject-match: %q is not Contains, StartsWith or EndsWith", f.subjectMatch)
		}
		q.SubjectMatch = m
	}
	if err := q.Validate(); err != nil {
		return q, err
	}
	return q, nil
}

func parseStatus(s string) (store.Status, bool) {
	return matchFold(strings.TrimSpace(s), store.AllStatuses...)
}

func matchFold[T ~string](s string, options ...T) (T, bool) {
	for _, o := range options {
		if strings.EqualFold(s, string(o)) {
			return o, true
		}
	}
	return "", false
}

// parseTime accepts RFC 3339 (with or without fractional seconds) or a date, read as UTC midnight.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2026-03-01T09:00:00Z) or a date (2026-03-01)", s)
}

func runQuery(ctx context.Context, f queryFlags, now time.Time, stdout, stderr io.Writer) error {
	q, err := buildQuery(f, now)
	if err != nil {
		return err
	}
	if !f.all && f.limit <= 0 {
		return errors.New("--limit must be positive (or use --all)")
	}
	w, err := newRowWriter(f.output, stdout)
	if err != nil {
		return err
	}
	st, err := openExisting(ctx, f.store)
	if err != nil {
		return err
	}
	defer st.Close()

	limit := f.limit
	if f.all {
		limit = pageSize
	}
	var cursor store.Cursor
	n := 0
	more := false
	for {
		page, err := st.Trace(ctx, q, cursor, limit)
		if err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		for _, r := range page.Rows {
			if err := w.Write(r); err != nil {
				return err
			}
		}
		n += len(page.Rows)
		cursor = page.Next
		if !f.all || cursor == "" {
			more = cursor != ""
			break
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if f := strings.ToLower(f.output); f == formatTable || f == formatWide || f == "" {
		return printFooter(ctx, st, q, n, more, stderr)
	}
	return nil
}

// printFooter tells, on stderr, how many rows matched in all.
func printFooter(ctx context.Context, st store.Store, q store.Query, shown int, more bool, stderr io.Writer) error {
	rangeText := fmt.Sprintf("%s to %s", q.Start.UTC().Format(time.RFC3339), q.End.UTC().Format(time.RFC3339))
	if shown == 0 {
		fmt.Fprintf(stderr, "No messages match (%s).\n", rangeText)
		return nil
	}
	c, err := st.Count(ctx, q)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	var parts []string
	for _, s := range store.AllStatuses {
		if v := c.ByStatus[s]; v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, v))
		}
	}
	fmt.Fprintf(stderr, "\n%d of %d matching rows shown (%s; %s).\n", shown, c.Total, strings.Join(parts, ", "), rangeText)
	if more {
		fmt.Fprintln(stderr, "More rows match: raise --limit or use --all.")
	}
	return nil
}
