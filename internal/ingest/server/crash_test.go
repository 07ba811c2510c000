package server

// Crash tests: the real `mailtrace ingest` binary, killed with SIGKILL at
// chosen and at random points, restarted on the same state file and
// write-ahead log, against a real SQLite file or PostgreSQL. What the
// senders were told is kept must be in the store at the end, exactly
// once: the store's rows and events equal those of a backfill of the same
// lines that was never interrupted.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/harness"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

var (
	crashBinOnce sync.Once
	crashBin     string
	crashBinErr  error
)

// removeCrashBinary removes what mailtraceBinary built (TestMain).
func removeCrashBinary() {
	if crashBin != "" && os.Getenv("MAILTRACE_CRASH_TEST_BIN") == "" {
		_ = os.RemoveAll(filepath.Dir(crashBin))
	}
}

// mailtraceBinary builds cmd/mailtrace once per test run
// ($MAILTRACE_CRASH_TEST_BIN names another binary to try, e.g. an older
// release's).
func mailtraceBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("MAILTRACE_CRASH_TEST_BIN"); b != "" {
		return b
	}
	crashBinOnce.Do(func() {
		var dir string
		if dir, crashBinErr = os.MkdirTemp("", "mailtrace-crash-test-*"); crashBinErr != nil {
			return
		}
		crashBin = filepath.Join(dir, "mailtrace")
		out, err := exec.Command("go", "build", "-o", crashBin, "github.com/mailtrace/mailtrace/cmd/mailtrace").CombinedOutput()
		if err != nil {
			crashBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if crashBinErr != nil {
		t.Fatal(crashBinErr)
	}
	return crashBin
}

// ingester is a `mailtrace ingest` process, started again and again with
// the same flags.
type ingester struct {
	t        *testing.T
	bin      string
	args     []string
	httpAddr string
	tcpAddr  string
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{}
	starts   int
}

func newIngester(t *testing.T, storeURL string, tcp bool) *ingester {
	dir := t.TempDir()
	in := &ingester{t: t, bin: mailtraceBinary(t), httpAddr: harness.FreeAddr(t), logPath: filepath.Join(dir, "ingest.log")}
	if tcp {
		in.tcpAddr = harness.FreeAddr(t)
	}
	in.args = []string{"ingest", "--store", storeURL, "--http", in.httpAddr, "--syslog-tcp", in.tcpAddr,
		"--insecure-no-auth", "--metrics-bind-address", "0", "--accepted-domain", "example.com",
		"--state-file", filepath.Join(dir, "ingest-state.json")}
	t.Cleanup(func() {
		if in.cmd != nil && in.exited != nil {
			_ = in.cmd.Process.Kill()
			<-in.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(in.logPath)
			t.Logf("ingester log (last 4000 bytes):\n%s", b[max(0, len(b)-4000):])
		}
	})
	return in
}

// start runs the ingester and waits until its listeners answer.
func (in *ingester) start() {
	in.t.Helper()
	logf, err := os.OpenFile(in.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		in.t.Fatal(err)
	}
	in.starts++
	fmt.Fprintf(logf, "---- start %d\n", in.starts)
	cmd := exec.Command(in.bin, in.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		in.t.Fatal(err)
	}
	in.cmd, in.exited = cmd, make(chan struct{})
	exited := in.exited
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + in.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			in.t.Fatalf("the ingester exited at start %d", in.starts)
		default:
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("the ingester does not answer on %s after a minute", in.httpAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if in.tcpAddr != "" {
		for {
			c, err := net.Dial("tcp", in.tcpAddr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				in.t.Fatalf("syslog TCP %s: %v", in.tcpAddr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (in *ingester) signal(sig syscall.Signal, wait time.Duration) {
	in.t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		in.t.Fatal(err)
	}
	select {
	case <-in.exited:
	case <-time.After(wait):
		in.t.Fatalf("the ingester did not exit %s after %v", wait, sig)
	}
	in.exited = nil
}

func (in *ingester) kill() { in.signal(syscall.SIGKILL, 10*time.Second) }
func (in *ingester) stop() { in.signal(syscall.SIGTERM, 60*time.Second) }

// crashMessage is the four lines of message i: client= and from= (part
// 0), then status=sent and removed (part 1).
func crashMessage(t0 time.Time, i int) [2][]string {
	qid := fmt.Sprintf("%010X", 0xC000000000+i)
	ts := t0.Add(time.Duration(i) * 100 * time.Millisecond)
	a, b := ts.Format(time.RFC3339Nano), ts.Add(time.Second).Format(time.RFC3339Nano)
	sender := fmt.Sprintf("s%05d@example.net", i)
	return [2][]string{{
		a + " mx1 postfix/smtpd[101]: " + qid + ": client=mx.example.net[192.0.2.1]",
		a + " mx1 postfix/qmgr[102]: " + qid + ": from=<" + sender + ">, size=1234, nrcpt=1 (queue active)",
	}, {
		b + " mx1 postfix/smtp[103]: " + qid + ": to=<r" + fmt.Sprint(i) + "@example.com>, relay=r[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 ok)",
		b + " mx1 postfix/qmgr[102]: " + qid + ": removed",
	}}
}

// feedLines is n messages, each message's four lines together.
func feedLines(t0 time.Time, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		m := crashMessage(t0, i)
		out = append(out, m[0]...)
		out = append(out, m[1]...)
	}
	return out
}

func openCrashStore(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := storeopen.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// storeDump is every row in [from, to) with its events, sorted.
func storeDump(t *testing.T, st store.Store, from, to time.Time) (rows []string, events int) {
	t.Helper()
	ctx := context.Background()
	var cur mailflow.Cursor
	for {
		p, err := st.Trace(ctx, mailflow.Query{Start: from, End: to}, cur, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rows {
			evs, err := st.Events(ctx, r.MessageTraceID, r.Recipient)
			if err != nil {
				t.Fatal(err)
			}
			var es []string
			for _, e := range evs {
				es = append(es, fmt.Sprintf("%s/%s/%s", e.Time.UTC().Format(time.RFC3339Nano), e.Type, e.ID))
			}
			events += len(evs)
			rows = append(rows, fmt.Sprintf("%s %s %s %s %s [%s]", r.MessageTraceID, r.Sender, r.Recipient, r.Status, r.Direction, strings.Join(es, " ")))
		}
		if p.Next == "" {
			break
		}
		cur = p.Next
	}
	sort.Strings(rows)
	return rows, events
}

// controlDump is what a backfill of lines, never interrupted, stores.
func controlDump(t *testing.T, lines []string, from, to time.Time) ([]string, int) {
	t.Helper()
	st := openStore(t)
	f := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := IngestFiles(context.Background(), st, []string{f}, FileOptions{Pipeline: PipelineOptions{Correlator: crashCorr}}); err != nil {
		t.Fatal(err)
	}
	return storeDump(t, st, from, to)
}

var crashCorr = ingest.Config{AcceptedDomains: []string{"example.com"}}

// crashStores runs f against a SQLite file and a PostgreSQL database.
func crashStores(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "sqlite://"+filepath.Join(t.TempDir(), "trace.db")) })
	t.Run("postgres", func(t *testing.T) { f(t, pgtest.DSN(t)) })
}

func postLines(addr string, lines []string) (int, error) {
	resp, err := http.Post("http://"+addr+"/ingest", "text/plain", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func mustPost(t *testing.T, addr string, lines []string) {
	t.Helper()
	code, err := postLines(addr, lines)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("POST of %d lines: %d %v", len(lines), code, err)
	}
}

func compareDumps(t *testing.T, got []string, gotEvents int, want []string, wantEvents int) {
	t.Helper()
	if slices.Equal(got, want) && gotEvents == wantEvents {
		return
	}
	t.Errorf("the store holds %d rows and %d events, a backfill never interrupted %d rows and %d events", len(got), gotEvents, len(want), wantEvents)
	var only []string
	for _, r := range got {
		if _, ok := slices.BinarySearch(want, r); !ok {
			only = append(only, "+ "+r)
		}
	}
	for _, r := range want {
		if _, ok := slices.BinarySearch(got, r); !ok {
			only = append(only, "- "+r)
		}
	}
	t.Errorf("differences (first 10):\n%s", strings.Join(only[:min(10, len(only))], "\n"))
}

func countStatus(t *testing.T, st store.Store, from, to time.Time, s mailflow.Status) (int64, int64) {
	t.Helper()
	c, err := st.Count(context.Background(), mailflow.Query{Start: from, End: to})
	if err != nil {
		t.Fatal(err)
	}
	return c.ByStatus[s], c.Total
}

// TestSplitPOSTSurvivesSIGKILL is issue 15's report: POST A carries the
// client= and from= lines of 200 messages, the ingester is killed 0.3 s
// after its 204, restarted, and POST B carries their status=sent and
// removed lines. Every message must end Delivered, once.
func TestSplitPOSTSurvivesSIGKILL(t *testing.T) {
	crashStores(t, func(t *testing.T, url string) {
		t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		from, to := t0.Add(-time.Hour), t0.Add(time.Hour)
		var a, b, all []string
		for i := 0; i < 200; i++ {
			m := crashMessage(t0, i)
			a, b = append(a, m[0]...), append(b, m[1]...)
		}
		all = append(append(all, a...), b...)
		in := newIngester(t, url, false)
		in.start()
		mustPost(t, in.httpAddr, a)
		time.Sleep(300 * time.Millisecond)
		in.kill()
		in.start()
		mustPost(t, in.httpAddr, b)
		st := openCrashStore(t, url)
		deadline := time.Now().Add(30 * time.Second)
		for {
			d, total := countStatus(t, st, from, to, mailflow.StatusDelivered)
			if d == 200 && total == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of 200 messages Delivered (%d rows) 30 s after POST B", d, total)
			}
			time.Sleep(100 * time.Millisecond)
		}
		in.stop()
		rows, events := storeDump(t, st, from, to)
		want, wantEvents := controlDump(t, all, from, to)
		compareDumps(t, rows, events, want, wantEvents)
		t.Logf("200/200 Delivered after SIGKILL; %d rows, %d events, as a backfill", len(rows), events)
	})
}

// killPoints returns kills sorted positions in [1, n-margin) at random,
// and random delays (up to 20 ms) after each: the kill lands while a batch
// is being sent, answered or read.
func killPoints(r *rand.Rand, n, margin, kills int) ([]int, []time.Duration) {
	pts := r.Perm(n - 1 - margin)[:kills]
	for i := range pts {
		pts[i]++
	}
	sort.Ints(pts)
	delays := make([]time.Duration, kills)
	for i := range delays {
		delays[i] = time.Duration(r.IntN(20)) * time.Millisecond
	}
	return pts, delays
}

// TestRandomSIGKILLOverHTTP: a long feed in batches of 37 lines (a
// message's lines often in two batches), sent as Fluent Bit does (a batch
// is retried until it is answered 2xx), while the ingester is killed 24
// times at random points and restarted. At the end the store (SQLite, and
// PostgreSQL) equals a backfill of the feed: every line sent is stored, no
// row or event twice.
func TestRandomSIGKILLOverHTTP(t *testing.T) { crashStores(t, randomSIGKILLOverHTTP) }

func randomSIGKILLOverHTTP(t *testing.T, url string) {
	const messages, batch, kills = 1000, 37, 24
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 15))
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	from, to := t0.Add(-time.Hour), t0.Add(2*time.Hour)
	lines := feedLines(t0, messages)
	var batches [][]string
	for i := 0; i < len(lines); i += batch {
		batches = append(batches, lines[i:min(i+batch, len(lines))])
	}
	in := newIngester(t, url, false)
	in.start()
	pts, delays := killPoints(r, len(batches), 0, kills)

	var sent atomic.Int64 // batches answered 204
	var retries atomic.Int64
	shipped := make(chan struct{})
	go func() {
		defer close(shipped)
		for _, b := range batches {
			for {
				code, err := postLines(in.httpAddr, b)
				if err == nil && code/100 == 2 {
					break
				}
				retries.Add(1)
				time.Sleep(10 * time.Millisecond)
			}
			sent.Add(1)
		}
	}()
	for k, p := range pts {
		for sent.Load() < int64(p) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(delays[k])
		in.kill()
		in.start()
	}
	<-shipped
	in.stop()
	st := openCrashStore(t, url)
	rows, events := storeDump(t, st, from, to)
	want, wantEvents := controlDump(t, lines, from, to)
	compareDumps(t, rows, events, want, wantEvents)
	d, total := countStatus(t, st, from, to, mailflow.StatusDelivered)
	if d != messages || total != messages {
		t.Errorf("%d of %d messages Delivered, %d rows", d, messages, total)
	}
	t.Logf("%d lines in %d batches, %d kills, %d retried requests: %d rows, %d events, as a backfill", len(lines), len(batches), kills, retries.Load(), len(rows), events)
}

// tcpProgress reads, for each message of the feed, how far the store
// shows its lines were read: 0 nothing, 2 client= and from= (a row
// waiting for its status), 4 all (Delivered). Rows are found by sender.
func tcpProgress(t *testing.T, st store.Store, from, to time.Time, n int) []int {
	t.Helper()
	prog := make([]int, n)
	var cur mailflow.Cursor
	for {
		p, err := st.Trace(context.Background(), mailflow.Query{Start: from, End: to}, cur, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rows {
			var i int
			if _, err := fmt.Sscanf(r.Sender, "s%05d@example.net", &i); err != nil || i >= n {
				t.Fatalf("a row of an unknown sender: %+v", r)
			}
			if r.Status == mailflow.StatusDelivered {
				prog[i] = 4
			} else {
				prog[i] = max(prog[i], 2)
			}
		}
		if p.Next == "" {
			return prog
		}
		cur = p.Next
	}
}

// settled waits until the store stops changing (the restarted ingester
// has read its write-ahead log again and stored what it gave) and returns
// the progress.
func settled(t *testing.T, st store.Store, from, to time.Time, n int) []int {
	t.Helper()
	prev := tcpProgress(t, st, from, to, n)
	for range 100 {
		time.Sleep(250 * time.Millisecond)
		cur := tcpProgress(t, st, from, to, n)
		if slices.Equal(prev, cur) {
			return cur
		}
		prev = cur
	}
	t.Fatal("the store does not settle")
	return nil
}

// TestRandomSIGKILLOverSyslogTCP: the same feed over newline-framed
// syslog TCP while the ingester is killed 20 times at random points. TCP
// has no acknowledgement: what a sender wrote into a connection that was
// cut may or may not have been read. What must hold is that a line the
// ingester read (and wrote to its log) is never lost while the lines
// after it are kept: after each restart the store shows an unbroken
// prefix of the connection's lines (no message after the first
// unfinished one has a row), and the sender resumes right after that
// prefix, as a sender that could ask what was kept would (a line read
// twice must not count twice). At the end the store equals a backfill.
// An ingester that loses its correlator state at a crash fails here: the
// status=sent line resumed after a crash finds no message.
func TestRandomSIGKILLOverSyslogTCP(t *testing.T) {
	const messages, batch, kills = 600, 23, 20
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 16))
	url := "sqlite://" + filepath.Join(t.TempDir(), "trace.db")
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	from, to := t0.Add(-time.Hour), t0.Add(2*time.Hour)
	lines := feedLines(t0, messages)
	nb := (len(lines) + batch - 1) / batch
	in := newIngester(t, url, true)
	in.start()
	st := openCrashStore(t, url)
	pts, delays := killPoints(r, nb, 12, kills) // the last kill before the feed's end

	next := 0 // the next line to send
	var written atomic.Int64
	resent := 0
	for k := 0; ; k++ {
		c, err := net.Dial("tcp", in.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(c)
		var killed chan struct{}
		if k < len(pts) {
			// the kill comes once the batch at its point is written
			at := min(max(pts[k]*batch, next+1), len(lines))
			killed = make(chan struct{})
			go func(at int64, d time.Duration) {
				defer close(killed)
				for written.Load() < at {
					time.Sleep(time.Millisecond)
				}
				time.Sleep(d)
				in.kill()
			}(int64(at), delays[k])
		}
	send:
		for next < len(lines) {
			end := min(next+batch, len(lines))
			for _, l := range lines[next:end] {
				fmt.Fprintf(w, "%s\n", l)
			}
			if err := w.Flush(); err != nil {
				break // cut by the kill
			}
			next = end
			written.Store(int64(next))
			time.Sleep(3 * time.Millisecond) // a mail server's pace, not a socket buffer's
			if killed != nil {
				select {
				case <-killed:
					break send
				default:
				}
			}
		}
		c.Close()
		if killed == nil {
			break // everything sent, no kill left
		}
		<-killed
		in.start()
		// what the store shows must be an unbroken prefix; resume after it
		prog := settled(t, st, from, to, messages)
		first := slices.IndexFunc(prog, func(p int) bool { return p < 4 })
		if first < 0 {
			first = messages
		}
		for j := first + 1; j < messages; j++ {
			if prog[j] > 0 {
				t.Fatalf("after kill %d: message %d is unfinished but message %d has a row: a line read before a kept one was lost", k+1, first, j)
			}
		}
		switch {
		case first == messages:
			next = len(lines)
		case prog[first] == 2:
			next = 4*first + 2
		default:
			next = max(0, 4*first-1) // with the previous message's removed
		}
		resent += max(0, int(written.Load())-next)
		written.Store(int64(next))
		if next == len(lines) && k+1 < len(pts) {
			t.Fatalf("the feed ended before kill %d of %d", k+2, kills)
		}
	}
	// the last connection's lines are read before the ingester stops
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		prog := tcpProgress(t, st, from, to, messages)
		if !slices.ContainsFunc(prog, func(p int) bool { return p < 4 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the feed: not every message Delivered")
		}
	}
	in.stop()
	rows, events := storeDump(t, st, from, to)
	want, wantEvents := controlDump(t, lines, from, to)
	compareDumps(t, rows, events, want, wantEvents)
	t.Logf("%d lines, %d kills, %d lines written into a connection that was cut and sent again: %d rows, %d events, as a backfill", len(lines), kills, resent, len(rows), events)
}
