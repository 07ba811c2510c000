package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailtrace/mailtrace/internal/filterflags"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// pageSize is how many rows one store call returns with --all.
const pageSize = 1000

// queryFlags are the trace filters (shared with kubectl mailtrace run) and
// what only a store query has.
type queryFlags struct {
	store  string
	filter filterflags.Flags
	limit  int
	all    bool
	output string
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
	f.filter.Register(cmd)
	fl.IntVar(&f.limit, "limit", 500, "most rows to print")
	fl.BoolVar(&f.all, "all", false, "print every matching row, page by page (ignores --limit)")
	fl.StringVarP(&f.output, "output", "o", formatTable, "output format: table, wide, json or csv")
	cmd.AddCommand(newDetailsCommand())
	return cmd
}

func runQuery(ctx context.Context, f queryFlags, now time.Time, stdout, stderr io.Writer) error {
	q, err := f.filter.Query(now)
	if err != nil {
		return err
	}
	if !f.all && f.limit <= 0 {
		return errors.New("--limit must be positive (or use --all)")
	}
	loc, err := f.filter.Location()
	if err != nil {
		return err
	}
	w, err := NewRowWriterIn(f.output, stdout, loc)
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
	var cursor mailflow.Cursor
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
		return printFooter(ctx, st, q, n, more, stderr, loc)
	}
	return nil
}

// printFooter tells, on stderr, how many rows matched in all.
func printFooter(ctx context.Context, st store.Reader, q mailflow.Query, shown int, more bool, stderr io.Writer, loc *time.Location) error {
	rangeText := fmt.Sprintf("%s to %s", q.Start.In(loc).Format(time.RFC3339), q.End.In(loc).Format(time.RFC3339))
	if shown == 0 {
		fmt.Fprintf(stderr, "No messages match (%s).\n", rangeText)
		return nil
	}
	c, err := st.Count(ctx, q)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	var parts []string
	for _, s := range mailflow.AllStatuses {
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
