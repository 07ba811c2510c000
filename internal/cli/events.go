package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
)

// loadBatch is how many events one Append carries.
const loadBatch = 1000

// maxLine is the longest NDJSON line accepted.
const maxLine = 1 << 20

func newEventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Work with the events of a trace store",
	}
	cmd.AddCommand(newEventsLoadCommand())
	return cmd
}

func newEventsLoadCommand() *cobra.Command {
	var storeURL string
	var batch int
	cmd := &cobra.Command{
		Use:   "load [FILE|-]",
		Short: "Append events from NDJSON (one store event per line) to a trace store",
		Long: `Append events to a trace store from NDJSON: one JSON event object per
line (see README.md for the fields). gzip-compressed input is detected and
read as such. Without FILE, or with -, events are read from stdin.

A line that is not valid JSON, or whose event lacks a required field, is
reported on stderr with its line number and skipped; every valid event is
still stored. Unknown fields are ignored. Loading the same file twice stores
each event once. The exit status is 1 when any line was skipped.`,
		Example: `  mailtrace events load --store sqlite://mailtrace.db events.ndjson
  zcat events.ndjson.gz | mailtrace events load -
  mailtrace details --trace-id 6ac2279ac0af5eb73a36 -o json | mailtrace events load --store postgres://mt@db/mailtrace`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "-"
			if len(args) == 1 {
				name = args[0]
			}
			var in io.Reader = cmd.InOrStdin()
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			ctx := cmd.Context()
			st, err := storeopen.Open(ctx, storeURL)
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := LoadEvents(ctx, st, in, batch, cmd.ErrOrStderr())
			fmt.Fprintf(cmd.ErrOrStderr(), "loaded %d events, skipped %d bad lines\n", res.Loaded, res.Skipped)
			if err != nil {
				return err
			}
			if res.Skipped > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	addStoreFlag(cmd, &storeURL)
	cmd.Flags().IntVar(&batch, "batch", loadBatch, "events per append")
	return cmd
}

// LoadResult counts what LoadEvents did.
type LoadResult struct {
	Loaded  int // events handed to the store (duplicates of stored events included)
	Skipped int // bad lines
}

type pending struct {
	line int
	ev   mailflow.Event
}

// LoadEvents appends the NDJSON events read from r to st in batches,
// reporting each bad line on report with its line number and going on.
// Input starting with the gzip magic bytes is decompressed. It returns an
// error only when the input cannot be read or the store fails; events
// appended before that stay stored.
func LoadEvents(ctx context.Context, st store.Store, r io.Reader, batch int, report io.Writer) (LoadResult, error) {
	if batch <= 0 {
		batch = loadBatch
	}
	var res LoadResult
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return res, fmt.Errorf("gzip input: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	bad := func(line int, format string, args ...any) {
		res.Skipped++
		fmt.Fprintf(report, "line %d: %s\n", line, fmt.Sprintf(format, args...))
	}
	var buf []pending
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		n, err := appendBatch(ctx, st, buf, bad)
		res.Loaded += n
		buf = buf[:0]
		return err
	}
	for line := 1; ; line++ {
		b, tooLong, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			if ferr := flush(); ferr != nil {
				return res, ferr
			}
			return res, fmt.Errorf("read line %d: %w", line, err)
		}
		if len(b) == 0 && !tooLong && errors.Is(err, io.EOF) {
			break
		}
		switch b = bytes.TrimSpace(b); {
		case tooLong:
			bad(line, "longer than %d bytes", maxLine)
		case len(b) == 0:
			// blank lines are allowed
		default:
			var e mailflow.Event
			if jerr := json.Unmarshal(b, &e); jerr != nil {
				bad(line, "not a JSON event: %v", jerr)
			} else if verr := e.Validate(); verr != nil {
				bad(line, "%v", verr)
			} else {
				buf = append(buf, pending{line, e})
			}
		}
		if len(buf) >= batch {
			if err := flush(); err != nil {
				return res, err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	return res, flush()
}

// appendBatch appends a batch. If the store refuses the batch while it is
// reachable, the events are appended one by one so that only the ones it
// refuses are skipped (and reported with their lines).
func appendBatch(ctx context.Context, st store.Store, batch []pending, bad func(int, string, ...any)) (int, error) {
	evs := make([]mailflow.Event, len(batch))
	for i, p := range batch {
		evs[i] = p.ev
	}
	err := st.Append(ctx, evs)
	if err == nil {
		return len(evs), nil
	}
	if ctx.Err() != nil {
		return 0, err
	}
	if perr := st.Ping(ctx); perr != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	n := 0
	for _, p := range batch {
		if err := st.Append(ctx, []mailflow.Event{p.ev}); err != nil {
			if ctx.Err() != nil {
				return n, err
			}
			if perr := st.Ping(ctx); perr != nil {
				return n, fmt.Errorf("append: %w", err)
			}
			bad(p.line, "the store refused the event: %v", err)
			continue
		}
		n++
	}
	return n, nil
}

// readLine reads one line without its newline. A line longer than maxLine
// is consumed and reported as too long rather than held in memory.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(out)+len(chunk) > maxLine {
				tooLong, out = true, nil
			} else {
				out = append(out, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return nil, true, err
		}
		return bytes.TrimSuffix(out, []byte("\n")), false, err
	}
}
