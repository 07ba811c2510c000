package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailtrace/mailtrace/internal/filterflags"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

type detailsFlags struct {
	store     string
	traceID   string
	recipient string
	output    string
	events    []string
	timeZone  string
}

// newDetailsCommand is both `mailtrace details` and `mailtrace query details`.
func newDetailsCommand() *cobra.Command {
	var f detailsFlags
	cmd := &cobra.Command{
		Use:   "details",
		Short: "Print one message's event timeline for one recipient (why it failed, where it went)",
		Long: `Print the events of one message, in time order: the message-level events
(Receive, Submit, ...) and the given recipient's own (Defer, Deliver, Fail, ...),
with relay, DSN code and the server's response where the log has them.
Without --recipient, every recipient of the message gets its timeline.

-o json prints one event per line in the NDJSON format "mailtrace events load" reads.`,
		Example: `  mailtrace details --trace-id 6ac2279ac0af5eb73a36 --recipient info@partner.example
  mailtrace query details --trace-id 6ac2279ac0af5eb73a36 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDetails(cmd.Context(), f, time.Now(), cmd.OutOrStdout())
		},
	}
	addStoreFlag(cmd, &f.store)
	cmd.Flags().StringVar(&f.traceID, "trace-id", "", "message trace ID of the message (required)")
	cmd.Flags().StringVar(&f.recipient, "recipient", "", "recipient whose timeline to print (default: every recipient)")
	cmd.Flags().StringVarP(&f.output, "output", "o", formatTable, "output format: table or json")
	cmd.Flags().StringSliceVar(&f.events, "event", nil, filterflags.EventUsage())
	filterflags.AddTimeZoneFlag(cmd.Flags(), &f.timeZone)
	return cmd
}

func runDetails(ctx context.Context, f detailsFlags, now time.Time, stdout io.Writer) error {
	if strings.TrimSpace(f.traceID) == "" {
		return errors.New("--trace-id is required (the TRACE ID column of mailtrace query)")
	}
	format := strings.ToLower(f.output)
	if format != formatTable && format != formatJSON {
		return fmt.Errorf("unknown output format %q: use table or json", f.output)
	}
	loc, err := filterflags.LoadLocation(f.timeZone)
	if err != nil {
		return err
	}
	types, err := filterflags.ParseEventTypes(f.events)
	if err != nil {
		return err
	}
	st, err := openExisting(ctx, f.store)
	if err != nil {
		return err
	}
	defer st.Close()

	recipients := []string{f.recipient}
	if f.recipient == "" {
		if recipients, err = messageRecipients(ctx, st, f.traceID, now); err != nil {
			return err
		}
		if len(recipients) == 0 {
			recipients = []string{""}
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	found := false
	for i, rcpt := range recipients {
		events, err := st.Events(ctx, f.traceID, rcpt)
		if err != nil {
			return fmt.Errorf("events of %s: %w", f.traceID, err)
		}
		if len(events) == 0 {
			continue
		}
		if rcpt != "" && !hasOwnEvent(events, rcpt) {
			// the store gives the message-level events to any address:
			// they are not this one's timeline
			known, err := messageRecipients(ctx, st, f.traceID, now)
			if err != nil {
				return err
			}
			return fmt.Errorf("%s is not a recipient of message %s (its recipients: %s)", rcpt, f.traceID, strings.Join(known, ", "))
		}
		found = true
		if events = onlyTypes(events, types); len(events) == 0 {
			continue
		}
		if format == formatJSON {
			for _, e := range events {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		who := rcpt
		if who == "" {
			who = "(no recipient known yet)"
		}
		fmt.Fprintf(stdout, "Message %s to %s:\n", f.traceID, who)
		if err := printTimeline(stdout, events, loc); err != nil {
			return err
		}
	}
	if !found {
		if f.recipient != "" {
			return fmt.Errorf("no events for message %s and recipient %s", f.traceID, f.recipient)
		}
		return fmt.Errorf("no events for message %s", f.traceID)
	}
	return nil
}

// messageRecipients finds a message's recipients: its rows around the time
// it was received (known from its message-level events), else in the
// longest range a query may cover, ending now.
func messageRecipients(ctx context.Context, st store.Reader, traceID string, now time.Time) ([]string, error) {
	end := now.UTC().Add(time.Hour)
	msgEvents, err := st.Events(ctx, traceID, "")
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", traceID, err)
	}
	var earliest time.Time
	for _, e := range msgEvents {
		for _, t := range []time.Time{e.Time, e.Received} {
			if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
				earliest = t
			}
		}
	}
	if !earliest.IsZero() {
		end = earliest.UTC().Add(24 * time.Hour)
	}
	q := mailflow.Query{Start: end.Add(-mailflow.MaxRange), End: end, MessageTraceID: traceID}
	page, err := st.Trace(ctx, q, "", 1000)
	if err != nil {
		return nil, fmt.Errorf("find the recipients of %s: %w", traceID, err)
	}
	var out []string
	for _, r := range page.Rows {
		if r.Recipient != "" {
			out = append(out, r.Recipient)
		}
	}
	return out, nil
}

// onlyTypes keeps the events of the given types (all when none are given).
func onlyTypes(events []mailflow.Event, types []mailflow.EventType) []mailflow.Event {
	if len(types) == 0 {
		return events
	}
	var out []mailflow.Event
	for _, e := range events {
		if slices.Contains(types, e.Type) {
			out = append(out, e)
		}
	}
	return out
}

// hasOwnEvent reports whether events hold one of recipient's own.
func hasOwnEvent(events []mailflow.Event, recipient string) bool {
	r := mailflow.NormalizeAddress(recipient)
	for i := range events {
		if mailflow.NormalizeAddress(events[i].Recipient) == r {
			return true
		}
	}
	return false
}
