// Package report writes a trace's result as a CSV report (PRODUCT.md, "CSV
// reports") and streams it to an object store.
//
// The report is UTF-8 (invalid bytes become U+FFFD) without a byte-order
// mark, with a header row and RFC 4180 quoting (CRLF line ends); optionally
// gzipped. Column names are the ones Exchange admins know from the
// historical-search CSVs. Cells a spreadsheet would run as a formula are
// neutralised (SafeCell). Line breaks inside a cell are written as CRLF
// (so a lone CR becomes one too) and read back as LF by most CSV readers.
// Timestamps are RFC 3339 in UTC, with as many
// fractional digits as the store holds.
//
// Rows are streamed from the trace store, from one query when the store can
// (store.Streamer), else page by page through its cursor: memory stays
// bounded by a few pages whatever the size of the result.
package report

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
)

// ErrTraceStore wraps every error of the trace store (Trace, Events), so a
// caller can tell a failing store from a failing writer or object store.
var ErrTraceStore = errors.New("trace store")

// Kind of report.
type Kind string

// Kinds of report.
const (
	// Summary has one row per (message, recipient).
	Summary Kind = "Summary"
	// Detailed has one row per event of each (message, recipient): the
	// summary's columns and the event's (DetailedColumns).
	Detailed Kind = "Detailed"
)

// ContentType of every report (the encoding says whether it is gzipped).
const ContentType = "text/csv; charset=utf-8"

// DefaultPageSize is the store page size when Options.PageSize is zero.
const DefaultPageSize = 1000

// MaxSubject is how many characters of a subject a report keeps.
const MaxSubject = 256

// The columns come in four groups. Exchange's come first and in
// Exchange's order in both reports (PRODUCT.md: admins' scripts carry
// over); ours are appended after them.
var (
	// exchangeRowColumns: a (message, recipient) row, as Exchange's summary.
	exchangeRowColumns = []string{
		"origin_timestamp_utc", "sender_address", "recipient_address", "message_subject",
		"delivery_status", "total_bytes", "message_id", "network_message_id",
		"original_client_ip", "from_ip", "to_ip", "directionality",
	}
	// exchangeEventColumns: an event, as Exchange's detailed report adds them.
	exchangeEventColumns = []string{
		"date_time_utc", "event_id", "source", "recipient_status", "server_ip",
		"server_hostname", "client_ip", "client_hostname", "relay", "dsn", "detail",
	}
	// ownEventColumns: what a spam filter (rspamd, amavis) said of the
	// message, on the event that says it.
	ownEventColumns = []string{"spam_action", "spam_score", "spam_symbols"}
	// ownRowColumns: the row's mailbox folder (Dovecot, Sieve: that of
	// its latest Save), the last column of both reports.
	ownRowColumns = []string{"mailbox_folder"}
)

// SummaryColumns are the columns of a summary report, in order: Exchange's,
// then mailbox_folder.
var SummaryColumns = concat(exchangeRowColumns, ownRowColumns)

// DetailedColumns are the columns of a detailed report: Exchange's (the
// row's, then the event's), then ours (the spam filter's of the event,
// then the row's mailbox_folder). Every summary column is in it once.
var DetailedColumns = concat(exchangeRowColumns, exchangeEventColumns, ownEventColumns, ownRowColumns)

func concat(groups ...[]string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// Options of a report.
type Options struct {
	// Kind is Summary (the default when empty) or Detailed.
	Kind Kind
	// Gzip compresses the report.
	Gzip bool
	// PageSize is how many rows are asked of the store at a time
	// (DefaultPageSize when zero).
	PageSize int
	// Metadata is added to the uploaded object's user metadata (Upload
	// only), e.g. the MessageTrace's namespace, name and uid.
	Metadata map[string]string
}

// Result describes a written report.
type Result struct {
	// Rows is the number of data rows written (the header not counted): one
	// per (message, recipient) for a summary, one per event for a detailed report.
	Rows int64
	// TraceRows is the number of (message, recipient) rows of the trace
	// (equal to Rows for a summary).
	TraceRows int64
	// Bytes is the number of bytes written (compressed when gzipped).
	Bytes int64
	// SHA256 is the hex digest of the bytes written (of the compressed stream when gzipped).
	SHA256 string
	// ContentType is always ContentType; ContentEncoding is "gzip" or empty.
	ContentType, ContentEncoding string
}

// Key returns the object key of a MessageTrace's report:
// <prefix>/<namespace>/<name>-<uid>/messagetrace.csv[.gz]. The prefix is
// trimmed of slashes; without one the key has no leading slash. The key is
// deterministic, so a retry after a restart overwrites instead of duplicating.
func Key(prefix, namespace, name, uid string, gz bool) string {
	file := "messagetrace.csv"
	if gz {
		file += ".gz"
	}
	k := namespace + "/" + name + "-" + uid + "/" + file
	if p := strings.Trim(prefix, "/"); p != "" {
		k = p + "/" + k
	}
	return k
}

// SafeCell neutralises a cell a spreadsheet would run as a formula: one that
// starts with `=`, `+`, `-`, `@`, a tab or a carriage return (or the
// full-width `＝`, `＋`, `－`, `＠` that Japanese Excel also accepts) gets a
// leading single quote. Other cells are returned unchanged.
func SafeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	r, _ := utf8.DecodeRuneInString(s)
	switch r {
	case '＝', '＋', '－', '＠':
		return "'" + s
	}
	return s
}

// lineBreaks turns every line break into LF: encoding/csv writes LF inside
// a quoted cell as CRLF (RFC 4180) but would drop a lone CR.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// cell makes a data string safe to write: valid UTF-8, not a formula, line
// breaks that survive.
func cell(s string) string {
	s = SafeCell(strings.ToValidUTF8(s, "\uFFFD"))
	if strings.IndexByte(s, '\r') >= 0 {
		s = lineBreaks.Replace(s)
	}
	return s
}

// truncate keeps the first n characters of s.
func truncate(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// summaryRecord fills the row's cells of rec (a record of SummaryColumns
// or of DetailedColumns) with row r.
func summaryRecord(rec []string, r *mailflow.Row) {
	rec[len(rec)-1] = cell(r.Folder) // ownRowColumns, last in both
	rec[0] = ts(r.Received)
	rec[1] = cell(r.Sender)
	rec[2] = cell(r.Recipient)
	rec[3] = cell(truncate(r.Subject, MaxSubject))
	rec[4] = cell(string(r.Status))
	rec[5] = strconv.FormatInt(r.Size, 10)
	rec[6] = cell(r.MessageID)
	rec[7] = cell(r.MessageTraceID)
	rec[8] = cell(r.OriginalClientIP)
	rec[9] = cell(r.FromIP)
	rec[10] = cell(r.ToIP)
	rec[11] = cell(string(r.Direction))
}

// eventRecord fills the event's cells of rec (a record of DetailedColumns)
// with event e (nil: empty cells).
func eventRecord(rec []string, e *mailflow.Event) {
	ev := rec[len(exchangeRowColumns) : len(rec)-len(ownRowColumns)]
	if e == nil {
		for i := range ev {
			ev[i] = ""
		}
		return
	}
	ev[0] = ts(e.Time)
	ev[1] = cell(string(e.Type))
	ev[2] = cell(e.Source)
	ev[3] = cell(e.SMTPResponse)
	ev[4] = cell(e.ServerIP)
	ev[5] = cell(e.ServerHostname)
	ev[6] = cell(e.ClientIP)
	ev[7] = cell(e.ClientHostname)
	ev[8] = cell(e.Relay)
	ev[9] = cell(e.DSN)
	ev[10] = cell(e.Detail)
	ev[11] = cell(e.Action)
	ev[12] = cell(e.Score)
	ev[13] = cell(strings.Join(e.Symbols, " "))
}

// countHash counts and hashes what goes through it to w.
type countHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// page is one page of the trace, with the events of each row for a detailed report.
type page struct {
	rows   []mailflow.Row
	events [][]mailflow.Event
	err    error
}

// eventWorkers bounds the concurrent Events calls of a detailed report.
const eventWorkers = 4

// Write streams the result of q from st to w as a CSV report. progress,
// when not nil, is called with the number of rows written so far after each
// page. On error the report written so far is incomplete; the Result still
// counts what was written.
func Write(ctx context.Context, w io.Writer, st store.Reader, q mailflow.Query, opts Options, progress func(rows int64)) (Result, error) {
	kind := opts.Kind
	if kind == "" {
		kind = Summary
	}
	if kind != Summary && kind != Detailed {
		return Result{}, fmt.Errorf("report: unknown kind %q (Summary or Detailed)", opts.Kind)
	}
	size := opts.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	res := Result{ContentType: ContentType}
	ch := &countHash{w: w, h: sha256.New()}
	out := io.Writer(ch)
	var zw *gzip.Writer
	if opts.Gzip {
		res.ContentEncoding = "gzip"
		zw, _ = gzip.NewWriterLevel(ch, gzip.DefaultCompression)
		out = zw
	}
	cw := csv.NewWriter(out)
	cw.UseCRLF = true
	finish := func(err error) (Result, error) {
		res.Bytes = ch.n
		res.SHA256 = hex.EncodeToString(ch.h.Sum(nil))
		return res, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The next page is read while this one is written: at most three pages
	// are in memory (one being written, one queued, one being read).
	pages := make(chan page, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(pages)
		fetch(ctx, st, q, size, kind == Detailed, pages)
	}()
	defer wg.Wait()
	defer cancel()

	cols := SummaryColumns
	if kind == Detailed {
		cols = DetailedColumns
	}
	if err := cw.Write(cols); err != nil {
		return finish(fmt.Errorf("report: write: %w", err))
	}
	rec := make([]string, len(cols))
	for p := range pages {
		if p.err != nil {
			return finish(p.err)
		}
		for i := range p.rows {
			r := &p.rows[i]
			summaryRecord(rec, r)
			res.TraceRows++
			if kind == Summary {
				if err := cw.Write(rec); err != nil {
					return finish(fmt.Errorf("report: write: %w", err))
				}
				res.Rows++
				continue
			}
			evs := p.events[i]
			if len(evs) == 0 {
				// No event known: the row still appears, with empty event cells.
				eventRecord(rec, nil)
				if err := cw.Write(rec); err != nil {
					return finish(fmt.Errorf("report: write: %w", err))
				}
				res.Rows++
			}
			for j := range evs {
				eventRecord(rec, &evs[j])
				if err := cw.Write(rec); err != nil {
					return finish(fmt.Errorf("report: write: %w", err))
				}
				res.Rows++
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return finish(fmt.Errorf("report: write: %w", err))
		}
		if progress != nil {
			progress(res.Rows)
		}
	}
	if err := ctx.Err(); err != nil {
		return finish(err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return finish(fmt.Errorf("report: write: %w", err))
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return finish(fmt.Errorf("report: write: %w", err))
		}
	}
	return finish(nil)
}

// fetch sends the pages of q to pages until the last one, an error, or ctx
// ends. A store that can stream (store.Streamer) is read with one query,
// cut into pages here; others page through Trace.
func fetch(ctx context.Context, st store.Reader, q mailflow.Query, size int, detailed bool, pages chan<- page) {
	if sm, ok := st.(store.Streamer); ok {
		stream(ctx, st, sm, q, size, detailed, pages)
		return
	}
	var cur mailflow.Cursor
	for {
		pg, err := st.Trace(ctx, q, cur, size)
		if err != nil {
			err = fmt.Errorf("report: %w: trace: %w", ErrTraceStore, err)
		}
		p := page{rows: pg.Rows, err: err}
		if err == nil && detailed {
			p.events, p.err = events(ctx, st, q.Scope, pg.Rows)
		}
		select {
		case pages <- p:
		case <-ctx.Done():
			return
		}
		if p.err != nil || pg.Next == "" {
			return
		}
		if pg.Next == cur {
			select {
			case pages <- page{err: errors.New("report: the trace store returned the same cursor twice")}:
			case <-ctx.Done():
			}
			return
		}
		cur = pg.Next
	}
}

// errStopped ends a stream whose reader is gone (ctx ended).
var errStopped = errors.New("report: stopped")

// stream is fetch for a store.Streamer.
func stream(ctx context.Context, st store.Reader, sm store.Streamer, q mailflow.Query, size int, detailed bool, pages chan<- page) {
	send := func(p page) bool {
		if p.err == nil && detailed && len(p.rows) > 0 {
			p.events, p.err = events(ctx, st, q.Scope, p.rows)
		}
		select {
		case pages <- p:
			return p.err == nil
		case <-ctx.Done():
			return false
		}
	}
	rows := make([]mailflow.Row, 0, size)
	err := sm.Stream(ctx, q, "", func(r *mailflow.Row) error {
		rows = append(rows, *r)
		if len(rows) < size {
			return nil
		}
		if !send(page{rows: rows}) {
			return errStopped
		}
		// The page sent is the writer's now: a fresh one for the next rows.
		rows = make([]mailflow.Row, 0, size)
		return nil
	})
	switch {
	case errors.Is(err, errStopped):
	case err != nil:
		send(page{err: fmt.Errorf("report: %w: trace: %w", ErrTraceStore, err)})
	case len(rows) > 0:
		send(page{rows: rows})
	}
}

// events reads the events of each row, eventWorkers at a time, within the
// query's scope (the store answers only for rows the scope can see).
func events(ctx context.Context, st store.Reader, scope []string, rows []mailflow.Row) ([][]mailflow.Event, error) {
	out := make([][]mailflow.Event, len(rows))
	errs := make([]error, len(rows))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(eventWorkers, len(rows)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = st.ScopedEvents(ctx, scope, rows[i].MessageTraceID, rows[i].Recipient)
			}
		}()
	}
	for i := range rows {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("report: %w: events of %s for %q: %w", ErrTraceStore, rows[i].MessageTraceID, rows[i].Recipient, err)
		}
	}
	return out, nil
}
