package ingest

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailtrace/mailtrace/internal/ingest/fastscan"
	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Correlator reads log lines, hands each to the source that claims it
// (sources.go) and emits the events the sources make of them. It is not
// safe for concurrent use.
type Correlator struct {
	cfg     Config
	emit    func([]mailflow.Event) error
	parser  syslog.Parser
	sources []source.Source
	names   []string // the sources' registered names, for State
	// waiters are the sources whose lines may wait for another source's
	// message: told after a line that emitted events (source.Waiter)
	waiters []source.Waiter
	// env is shared with the sources: the clock (env.Now), the counters,
	// the events of the current line
	env       source.Env
	line      source.Line // the line being consumed
	lastSweep time.Time
	sweepAt   time.Time // lastSweep + 10s: now.Sub(lastSweep) >= 10s is !now.Before(sweepAt), now never being before lastSweep
	// env.Now and sweepAt as Unix seconds and nanoseconds (setNow,
	// setLastSweep), which every line is compared with: inlined integer
	// comparisons where After and Before are calls (log times have no
	// monotonic reading)
	nowSec, sweepSec   int64
	nowNsec, sweepNsec int
	// emitCopies: emit copies the events and keeps nothing of the slice
	// (IngestReader's), so the slice is reused for the next line's
	emitCopies bool
}

// NewCorrelator returns a correlator that passes the events of each line to
// emit (never an empty slice). An error from emit is returned by Feed.
func NewCorrelator(cfg Config, emit func([]mailflow.Event) error) *Correlator {
	cfg.defaults()
	c := &Correlator{
		cfg:    cfg,
		emit:   emit,
		parser: syslog.Parser{Reference: cfg.Reference, Location: cfg.Location},
	}
	scfg := cfg.source()
	c.env.Links = source.NewLinks(c.TraceID, c.takeRecipients)
	for _, r := range sources {
		s := r.New(scfg, &c.env)
		c.sources = append(c.sources, s)
		c.names = append(c.names, r.Name)
		if w, ok := s.(source.Waiter); ok {
			c.waiters = append(c.waiters, w)
		}
	}
	c.setNow(time.Time{})
	c.setLastSweep(time.Time{})
	return c
}

// EmitCopies tells the correlator that its emit function copies the
// events it is handed and keeps nothing of the slice (the pipeline's
// appends them to its batch): the slice is then reused for the next
// line's events instead of being made anew for every line that emits.
// Call it before the first line.
func (c *Correlator) EmitCopies() { c.emitCopies = true }

// Stats returns what the correlator has read so far.
func (c *Correlator) Stats() Stats {
	s := c.env.Stats
	s.NotUnderstood = map[string]int64{}
	for k, v := range c.env.Stats.NotUnderstood {
		s.NotUnderstood[k] = v
	}
	return s
}

// Skipped returns how many lines were not understood so far and the reason
// of the latest one: a live reader compares it around Feed to count and log
// a bad line without copying Stats for every line.
func (c *Correlator) Skipped() (int64, string) { return c.env.Stats.Skipped() }

// Evicted returns how many messages were evicted over the cap on messages
// in flight so far (Stats().Evicted, without copying Stats).
func (c *Correlator) Evicted() int64 { return c.env.Stats.Evicted }

// Now is the correlator's clock: the latest log time it has seen or been
// advanced to.
func (c *Correlator) Now() time.Time { return c.env.Now }

// TraceID returns the trace ID a source gave the message it knows as id
// on host (a Postfix queue id), while it remembers it ("" otherwise, or
// while the message is held).
func (c *Correlator) TraceID(host, id string) string {
	for _, s := range c.sources {
		if t := s.TraceID(host, id); t != "" {
			return t
		}
	}
	return ""
}

// takeRecipients hands the Message-ID and recipients a joining line names
// to the sources that take them (source.RecipientTaker).
func (c *Correlator) takeRecipients(host, id, messageID string, rcpts []string) {
	for _, s := range c.sources {
		if r, ok := s.(source.RecipientTaker); ok {
			r.TakeRecipients(host, id, messageID, rcpts)
		}
	}
}

// Feed reads one line (without its newline).
func (c *Correlator) Feed(line string) error { return c.feed(line, false) }

// feed is Feed. When view is set the bytes of line belong to the caller
// and are reused after the call (a read buffer): the line is then copied
// only when something of it is kept, which is not the case for the great
// majority of a server's lines (connect, disconnect, postscreen, TLS,
// statistics).
func (c *Correlator) feed(line string, view bool) error {
	var p prepared
	c.prepareLine(&p, &c.parser, line, view, false)
	return c.consume(&p)
}

// FeedFields reads one message whose header a sender already split (an
// RFC 5424 frame, a JSON record): the same as Feed of f.Text(), without
// joining the fields into a line to split it again. The file form is made
// only for a line that may matter, as its identity (event IDs digest it):
// a message gets the same event IDs however it is read.
func (c *Correlator) FeedFields(f *syslog.Fields) error {
	var p prepared
	c.prepareFields(&p, &c.parser, f)
	return c.consume(&p)
}

// A line is read in two halves: prepare (checks, syslog header, the source
// that claims it and its Prepare: no correlator state but the syslog
// parser's) and consume (counters, clock, the source's Consume).
// ReadLines may run the first half of the next lines on another core while
// the second half runs.
type prepOp uint8

const (
	prepNone       prepOp = iota // nothing was read
	prepTooLong                  // counted as too long
	prepEmpty                    // counted as empty
	prepNotSyslog                // counted as not syslog
	prepNotPostfix               // counted as claimed by no source
	prepIgnored                  // nothing to trace, known by the source's Prepare
	prepLine                     // to the source's Consume
)

// prepared is a line after the first half.
type prepared struct {
	op      prepOp
	invalid bool    // was not valid UTF-8 (repaired)
	src     uint8   // the source that claimed it: an index of Correlator.sources
	host    *string // detach: the latest host seen, reused while it stays the same
	// line: for prepLine all of it; for prepIgnored its Host, PID, UTC and
	// Verdict (see source.Verdict)
	line source.Line
}

// prepareLine is the first half of feed. view: line's bytes are reused
// after the call; detach: p must stay valid after that (copies what it
// keeps), else p may share line's bytes until consume.
func (c *Correlator) prepareLine(p *prepared, parser *syslog.Parser, line string, view, detach bool) {
	if len(line) > c.cfg.MaxLineBytes {
		p.op = prepTooLong
		return
	}
	for n := len(line); n > 0 && (line[n-1] == '\n' || line[n-1] == '\r'); n-- {
		line = line[:n-1]
	}
	// a line starting with a printable ASCII byte is not blank; only the
	// others need the full (Unicode) test
	if len(line) == 0 || !(line[0] > ' ' && line[0] < utf8.RuneSelf) {
		if strings.TrimSpace(line) == "" {
			p.op = prepEmpty
			return
		}
	}
	if !fastscan.IsASCII(line) && !utf8.ValidString(line) {
		// Repair rather than drop: a Latin-1 subject must not cost the
		// delivery line it is on.
		p.invalid = true
		line = strings.ToValidUTF8(line, "\uFFFD")
		view = false
	}
	// a line without a syslog header that a source knows by its shape
	// (Exim's own log file), else syslog
	if !(mayBeShaped(line) && shaped(&p.line.Line, line, c.cfg.Location)) {
		if err := parser.ParseInto(&p.line.Line, line); err != nil {
			p.op = prepNotSyslog
			return
		}
	}
	c.prepareParsed(p, &p.line.Line, line, view, detach)
}

// prepareFields is the first half of FeedFields: prepareLine's checks, on
// the fields (f is not changed).
func (c *Correlator) prepareFields(p *prepared, parser *syslog.Parser, f *syslog.Fields) {
	if f.Len() > c.cfg.MaxLineBytes {
		p.op = prepTooLong
		return
	}
	if n := len(f.Message); n > 0 && (f.Message[n-1] == '\n' || f.Message[n-1] == '\r') {
		g := *f
		for n > 0 && (g.Message[n-1] == '\n' || g.Message[n-1] == '\r') {
			n--
		}
		g.Message = g.Message[:n]
		f = &g
	}
	if !f.ValidUTF8() {
		p.invalid = true
		g := f.ToValidUTF8()
		f = &g
	}
	if err := parser.ParseFields(&p.line.Line, f); err != nil {
		p.op = prepNotSyslog
		return
	}
	c.prepareParsed(p, &p.line.Line, "", false, false)
	if p.op == prepLine {
		p.line.Raw = f.Text()
	}
}

// prepareParsed is the second part of prepareLine and prepareFields: the
// source that claims the line, and what its Prepare says (l is
// &p.line.Line).
func (c *Correlator) prepareParsed(p *prepared, l *syslog.Line, raw string, view, detach bool) {
	v, src := c.claim(l.Program, l.Message)
	if src < 0 {
		p.op = prepNotPostfix
		return
	}
	p.src = uint8(src)
	p.line.UTC = l.Time.UTC()
	p.line.Verdict = v
	if v.Ignore {
		// nothing kept but, for a line the source Keeps, its host
		p.op = prepIgnored
		if view && detach && v.Keep && p.host != nil {
			if *p.host != l.Host {
				*p.host = strings.Clone(l.Host)
			}
			l.Host = *p.host
		}
		return
	}
	p.op = prepLine
	if view {
		// this line may be kept: give it bytes of its own
		owned := strings.Clone(raw)
		l.Host, l.Program, l.Message = rebase(l.Host, raw, owned), rebase(l.Program, raw, owned), rebase(l.Message, raw, owned)
		p.line.Daemon = rebase(v.Daemon, raw, owned)
		raw = owned
	}
	p.line.Raw = raw
}

// claim returns the first source that claims a line (its index in
// c.sources, -1 for none) and its Verdict.
func (c *Correlator) claim(program, msg string) (source.Verdict, int) {
	for i, s := range c.sources {
		if v, ok := s.Prepare(program, msg); ok {
			return v, i
		}
	}
	return source.Verdict{}, -1
}

// consume is the second half of feed.
func (c *Correlator) consume(p *prepared) error {
	if done, err := c.consumeHead(p.op, p.invalid, p.line.UTC, p.line.Keep); done {
		return err
	}
	// the source gets a copy in c: a pointer to p handed through the
	// interface would put every line's prepared on the heap
	c.line = p.line
	c.sources[p.src].Consume(&c.line)
	c.line = source.Line{}
	return c.drain()
}

// consumeHead is the part of consume that needs nothing of a line but
// its op, whether it was repaired, its time and whether its source keeps
// it though it is ignored: all of it for most lines (done), which the
// pipeline hands over in a few bytes instead of a whole prepared.
func (c *Correlator) consumeHead(op prepOp, invalid bool, t time.Time, keep bool) (done bool, err error) {
	if op == prepNone {
		return true, nil
	}
	st := &c.env.Stats
	st.Lines++
	if invalid {
		st.InvalidUTF8++
	}
	switch op {
	case prepTooLong:
		st.Skip(ReasonTooLong)
		return true, nil
	case prepEmpty:
		st.Skip(ReasonEmpty)
		return true, nil
	case prepNotSyslog:
		st.Skip(ReasonNotSyslog)
		return true, nil
	case prepNotPostfix:
		st.Skip(ReasonNotPostfix)
		return true, nil
	}
	// t.After(c.env.Now), then !c.env.Now.Before(c.sweepAt): only a
	// clock that moved can reach sweepAt, which is past the clock
	// whenever it is set (setLastSweep of the clock)
	if ts, tns := t.Unix(), t.Nanosecond(); ts > c.nowSec || ts == c.nowSec && tns > c.nowNsec {
		c.env.Now, c.nowSec, c.nowNsec = t, ts, tns
		if ts > c.sweepSec || ts == c.sweepSec && tns >= c.sweepNsec {
			c.sweep()
			c.setLastSweep(c.env.Now)
		}
	}
	if op == prepIgnored && !keep {
		st.Ignored++
		return true, c.drain()
	}
	return false, nil
}

// rebase returns the substring of to at the place sub has in from (sub is a
// substring of from, to a copy of from); a sub that is not in from (a
// constant) is returned as it is.
func rebase(sub, from, to string) string {
	if len(sub) == 0 {
		return ""
	}
	off, ok := fastscan.Offset(sub, from)
	if !ok {
		return sub
	}
	return to[off : off+len(sub)]
}

func (c *Correlator) drain() error {
	if len(c.env.Out) == 0 {
		return nil
	}
	// what was emitted may be what a waiting line of another source was
	// waiting for (source.Links): those lines' events join this line's
	if len(c.waiters) > 0 {
		for i := 0; i < len(c.env.Out); i++ {
			c.env.Links.Note(&c.env.Out[i])
			if i == len(c.env.Out)-1 && c.env.Links.Noted() {
				for _, w := range c.waiters {
					w.Linked()
				}
			}
		}
	}
	evs := c.env.Out
	c.env.Out = nil
	c.env.Stats.Events += int64(len(evs))
	err := c.emit(evs)
	if c.emitCopies {
		c.env.Out = evs[:0]
	}
	return err
}

// Advance moves the correlator's clock (log time) to now when no line has
// done so, releasing what waited too long for a link. A live reader calls it
// during quiet periods so that held messages do not wait for the next line.
func (c *Correlator) Advance(now time.Time) error {
	now = now.UTC()
	if now.After(c.env.Now) {
		c.setNow(now)
		c.sweep()
		c.setLastSweep(c.env.Now)
	}
	return c.drain()
}

// Flush releases every held message (and every unclaimed content filter
// run) as a message of its own (call it at the end of a file, or before a
// shutdown without State). Remembered lifecycles are kept.
func (c *Correlator) Flush() error {
	for _, s := range c.sources {
		s.Flush()
	}
	return c.drain()
}

func (c *Correlator) setLastSweep(t time.Time) {
	c.lastSweep, c.sweepAt = t, t.Add(10*time.Second)
	c.sweepSec, c.sweepNsec = c.sweepAt.Unix(), c.sweepAt.Nanosecond()
}

// setNow sets the clock (env.Now, which the sources read) and its
// shadow (nowSec, nowNsec).
func (c *Correlator) setNow(t time.Time) {
	c.env.Now, c.nowSec, c.nowNsec = t, t.Unix(), t.Nanosecond()
}

func (c *Correlator) sweep() {
	c.env.Links.Forget(c.env.Now, c.cfg.ForgetAfter)
	for _, s := range c.sources {
		s.Sweep()
	}
}
