// Package maillab starts a small, real mail system on loopback for tests, in
// one temporary directory, so that scenarios can send real SMTP and check
// what mailtrace makes of the logs it writes:
//
//   - Postfix (a private instance: its own config, queue and data
//     directories): smtpd on a free port playing port 25, a submission
//     port with SASL through Dovecot's auth, virtual mailbox domain
//     Domain (virtual alias maps, a transport map, header_checks), and
//     `maillog_file` into the temp dir;
//   - rspamd as Postfix's milter (its proxy worker scanning by itself, no
//     Redis), which rejects GTUBE;
//   - Dovecot: LMTP with Sieve and quota for the mailboxes (passwd-file
//     users, one Maildir each) and the SASL auth service;
//   - a remote MX (internal/testutil/smtptest) that all other domains
//     route to, answering each recipient by its local part (see
//     RemoteReply);
//   - rsyslog, tailing the maillog (imfile) and forwarding it octet-counted
//     over TLS with a client certificate, into
//   - a real `mailtrace ingest` (the CLI command, in this process) writing
//     to PostgreSQL (internal/testutil/pgtest).
//
// Clients claim outside addresses with Postfix's XCLIENT (Send, Submit):
// loopback would be taken for the machine itself. RestartIngester and
// RestartPostfix restart a component mid-flow.
//
// Start brings everything up and stops it when the test ends. What it needs
// is installed by hack/maillab.sh (Debian's packages). When something is
// missing, the test skips with a message saying how to install it, or fails
// with that message when CI is set; any other failure to start fails the
// test with the component's log.
//
// The test process must run as root: Postfix and Dovecot start their own
// privileged master processes (the sandboxes and CI runners here do).
package maillab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/harness"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
	"github.com/mailtrace/mailtrace/internal/testutil/smtptest"
)

// The lab's names.
const (
	// Domain is the organisation's mail domain: Postfix's virtual mailbox
	// domain, delivered to Dovecot over LMTP, and the ingester's accepted domain.
	Domain = "lab.test"
	// RemoteDomain is a domain outside, served by the remote MX (every
	// domain but Domain routes there).
	RemoteDomain = "remote.test"
	// Hostname is Postfix's myhostname.
	Hostname = "mx.lab.test"
	// Password is every mailbox user's password (SASL on submission).
	Password = "secret"
)

// Named users, each with a mailbox; User(n) names the numbered ones.
var namedUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "list", "mallory", "oscar", "peggy", "trent", "victor", "walter"}

// NumberedUsers is how many numbered mailboxes (u01@, u02@, ...) exist.
const NumberedUsers = 65

// User returns the address of numbered mailbox n (1-based): u01@lab.test.
func User(n int) string { return fmt.Sprintf("u%02d@%s", n, Domain) }

// Aliases are the virtual alias maps of the lab (address -> members).
var Aliases = map[string][]string{
	"group@" + Domain:      {"alice@" + Domain, "bob@" + Domain, "carol@" + Domain},
	"alias@" + Domain:      {"dave@" + Domain},
	"team@" + Domain:       {"grace@" + Domain, "heidi@" + Domain, "ivan@" + Domain},
	"forward@" + Domain:    {"partner@" + RemoteDomain},
	"postmaster@" + Domain: {"walter@" + Domain},
	// aliases that keep their own copy: list@ (a mailbox) for a colleague
	// and an outside address the remote MX defers; an outside address
	// (the remote MX defers its own copy) for a colleague
	"list@" + Domain:            {"list@" + Domain, "bob@" + Domain, "defer-list@" + RemoteDomain},
	"defer-own@" + RemoteDomain: {"defer-own@" + RemoteDomain, "carol@" + Domain},
}

// HeaderChecks are the lab's header_checks (regexp table, first match wins):
// a subject tag decides the action; every other Subject is logged (INFO), as
// sites that want subjects in their logs do.
var HeaderChecks = []string{
	`/^Subject:.*\[lab-hold\]/ HOLD lab rule: held for review`,
	`/^Subject:.*\[lab-discard\]/ DISCARD lab rule: discarded`,
	`/^Subject:.*\[lab-redirect\]/ REDIRECT dave@` + Domain,
	`/^Subject:.*\[lab-reject\]/ REJECT lab rule: rejected`,
	`/^Subject:/ INFO`,
}

// SenderAccess is the lab's check_sender_access table: a sender it names
// is refused at RCPT with that reply (the server's own trouble, scripted).
var SenderAccess = []string{
	"storage@" + RemoteDomain + " 452 4.3.1 Insufficient system storage",
}

// QuotaUser is the mailbox whose Dovecot quota (1 KiB) any message exceeds:
// Dovecot's LMTP refuses it with 552 5.2.2.
const QuotaUser = "trent@" + Domain

// RemoteReply is how the remote MX answers RCPT TO, by the recipient's local
// part: "defer*" gets 451 4.3.0 (retried later), "nosuch*" gets 550 5.1.1,
// "full*" 552 5.2.2; every other recipient is accepted. ("deferonce*" is
// deferred the first time only; the Lab's remote MX keeps that state.)
func RemoteReply(rcpt string) string {
	local, _, _ := strings.Cut(strings.ToLower(rcpt), "@")
	switch {
	case strings.HasPrefix(local, "defer"):
		return "451 4.3.0 <" + rcpt + ">: lab remote: try again later"
	case strings.HasPrefix(local, "nosuch"):
		return "550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown"
	case strings.HasPrefix(local, "full"):
		return "552 5.2.2 <" + rcpt + ">: Mailbox full"
	}
	return ""
}

// StallFor is how long the remote MX takes to answer RCPT TO for a
// "stall*" recipient (then accepts it): longer than the lab ingester's
// --pending-after (PendingAfter), shorter than its connection deadline.
const StallFor = 28 * time.Second

// PendingAfter is the lab ingester's --pending-after: a message with no
// outcome this long after it was received is Pending.
const PendingAfter = 10 * time.Second

// remoteReplies is RemoteReply with "deferonce*" recipients deferred at
// their first RCPT and accepted afterwards, and "stall*" ones answered
// after StallFor.
func remoteReplies() func(string) string {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(rcpt string) string {
		local, _, _ := strings.Cut(strings.ToLower(rcpt), "@")
		if strings.HasPrefix(local, "stall") {
			// a slow remote: the delivery stays in Postfix's active
			// queue, its outcome unlogged, for StallFor
			time.Sleep(StallFor)
			return ""
		}
		if strings.HasPrefix(local, "deferonce") {
			mu.Lock()
			defer mu.Unlock()
			if seen[local] {
				return ""
			}
			seen[local] = true
		}
		return RemoteReply(rcpt)
	}
}

// Lab is a running mail lab.
type Lab struct {
	// Dir is the temporary directory everything lives in.
	Dir string
	// SMTP is Postfix's smtpd (the MX, port 25's role), host:port.
	SMTP string
	// Submission is Postfix's submission service (AUTH PLAIN required to
	// relay), host:port.
	Submission string
	// Remote is the remote MX every other domain routes to.
	Remote *smtptest.Server
	// StoreURL is the PostgreSQL store the ingester writes to.
	StoreURL string
	// Store reads it.
	Store store.Reader

	ports      ports
	procs      []*proc
	ingestStop func()
	dsn        string
	certs      certFiles
	postfix    *proc
	// proxied: the MTA Send and Submit speak to takes the client's
	// address from a PROXY protocol header, not XCLIENT (Exim, exim.go)
	proxied bool
	mu      sync.Mutex
}

type ports struct {
	// milter: rspamd's proxy worker (Postfix's milter); scan: its normal
	// worker (Exim's spam ACL)
	smtp, submission, lmtp, auth, milter, scan, syslog int
}

// errMissing marks "not installed": skip, or fail under CI.
type errMissing struct{ msg string }

func (e errMissing) Error() string { return e.msg }

const installHint = "run hack/maillab.sh as root (or `make test-maillab`), which installs Debian's postfix, swaks, dovecot-core, dovecot-lmtpd, dovecot-sieve, rspamd, rsyslog and rsyslog-gnutls"

// Binaries the lab runs, with the package that provides each.
var binaries = []struct{ path, pkg string }{
	{"/usr/sbin/postfix", "postfix"},
	{"/usr/lib/postfix/sbin/master", "postfix"},
	{"/usr/sbin/dovecot", "dovecot-core"},
	{"/usr/lib/dovecot/lmtp", "dovecot-lmtpd"},
	{"/usr/lib/dovecot/modules/lib90_sieve_plugin.so", "dovecot-sieve"},
	{"/usr/bin/rspamd", "rspamd"},
	{"/usr/sbin/rsyslogd", "rsyslog"},
}

// Check reports what the lab lacks on this machine: nil when it can start.
func Check() error {
	var missing []string
	for _, b := range binaries {
		if _, err := os.Stat(b.path); err != nil {
			missing = append(missing, b.pkg+" ("+b.path+")")
		}
	}
	if m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(m) == 0 {
		missing = append(missing, "rsyslog-gnutls (lmnsd_gtls.so)")
	}
	if len(missing) > 0 {
		return errMissing{"maillab: not installed: " + strings.Join(missing, ", ") + "; " + installHint}
	}
	if os.Geteuid() != 0 {
		return errMissing{"maillab: the mail lab runs private Postfix and Dovecot master processes and must run as root"}
	}
	for _, u := range []string{"postfix", "dovecot", "dovenull", "mail"} {
		if err := exec.Command("id", u).Run(); err != nil {
			return errMissing{"maillab: no `" + u + "` OS user (the packages create it); " + installHint}
		}
	}
	return nil
}

// fail reports err: a skip for a missing installation (a failure under CI), a failure otherwise.
func fail(t testing.TB, err error) {
	t.Helper()
	var m errMissing
	if errors.As(err, &m) && os.Getenv("CI") == "" {
		t.Skip(err.Error())
	}
	t.Fatal(err.Error())
}

// Start starts a lab; everything stops, and the directory goes, when the
// test ends (the directory stays when it failed, and its path is logged).
func Start(t testing.TB) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		fail(t, err)
	}
	removeStale()
	dir, err := os.MkdirTemp("", "mailtrace-maillab-")
	if err != nil {
		t.Fatal(err)
	}
	// The daemons run as their own users and must reach their files.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &Lab{Dir: dir}
	t.Cleanup(func() {
		l.stop()
		if t.Failed() || os.Getenv("MAILTRACE_MAILLAB_KEEP") != "" {
			// Without its owner file, the next lab's clean-up leaves it.
			_ = os.Remove(filepath.Join(dir, "owner.pid"))
			t.Logf("maillab: kept %s (logs in log/; remove it when done)", dir)
			return
		}
		os.RemoveAll(dir)
	})
	if err := l.start(t); err != nil {
		fail(t, err)
	}
	return l
}

func (l *Lab) start(t testing.TB) error {
	for _, p := range []*int{&l.ports.smtp, &l.ports.submission, &l.ports.lmtp, &l.ports.auth, &l.ports.milter, &l.ports.scan, &l.ports.syslog} {
		port, err := harness.FreePort()
		if err != nil {
			return err
		}
		*p = port
	}
	l.SMTP = addr(l.ports.smtp)
	l.Submission = addr(l.ports.submission)
	l.Remote = smtptest.StartWith(t, smtptest.Options{RcptReply: remoteReplies()})
	if err := os.MkdirAll(l.path("log"), 0o755); err != nil {
		return err
	}
	certs, err := writeCerts(l.path("tls"))
	if err != nil {
		return err
	}

	// Everything starts at once (rspamd's start, PostgreSQL's initdb and
	// `postfix check` take seconds each); no mail is sent before all are up.
	t0 := time.Now()
	timed := func(name string, f func() error) func() error {
		return func() error {
			err := f()
			t.Logf("maillab: %s up after %s", name, time.Since(t0).Round(10*time.Millisecond))
			return err
		}
	}
	dsn := pgtest.DSN(t)
	l.StoreURL = dsn
	starts := []func() error{
		timed("rspamd", l.startRspamd),
		timed("dovecot", l.startDovecot),
		timed("ingester", func() error { return l.startIngester(dsn, certs) }),
		timed("postfix", l.startPostfix),
	}
	var wg sync.WaitGroup
	errs := make([]error, len(starts))
	for i, f := range starts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := timed("rsyslog", func() error { return l.startRsyslog(certs) })(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := storeopen.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("maillab: open the store: %w", err)
	}
	t.Cleanup(func() { st.Close() })
	l.Store = st
	return timed("probe delivered", func() error { return l.probe(t) })()
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func (l *Lab) path(p ...string) string { return filepath.Join(append([]string{l.Dir}, p...)...) }

// LogFile returns the path of one of the lab's logs: "maillog" (Postfix),
// "dovecot.log", "rspamd.log", "rsyslog.log", "ingest.log".
func (l *Lab) LogFile(name string) string { return l.path("log", name) }

// DumpGoroutines writes the stacks of every goroutine of the test process
// (the lab's ingester runs in it) to log/goroutines-<time>.txt, headed by
// why: what a hung ingester was doing.
func (l *Lab) DumpGoroutines(why string) {
	name := l.LogFile("goroutines-" + time.Now().UTC().Format("150405.000") + ".txt")
	f, err := os.Create(name)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\n\n", why)
	_ = pprof.Lookup("goroutine").WriteTo(f, 2)
}

// Logs returns the tail of every log of the lab, for a failure message.
func (l *Lab) Logs() string {
	var b strings.Builder
	names, _ := filepath.Glob(l.path("log", "*"))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", filepath.Base(n), harness.Tail(string(data), 3000))
	}
	return b.String()
}

// proc is a child process of the lab.
type proc struct {
	name   string
	out    string // its stdout and stderr, log/<name>.out
	cmd    *exec.Cmd
	exited chan struct{}
	stop   func() // how to ask it to stop; SIGTERM when nil
}

// spawn starts a child whose output goes to log/<name>.out; it dies with
// the test binary (Pdeathsig).
func (l *Lab) spawn(name string, env []string, argv ...string) (*proc, error) {
	out, err := os.Create(l.path("log", name+".out"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = l.Dir
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TZ=UTC", "LANG=C.UTF-8", "HOME=" + l.Dir}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := harness.Spawn(cmd); err != nil {
		out.Close()
		return nil, fmt.Errorf("maillab: start %s: %w", name, err)
	}
	p := &proc{name: name, out: out.Name(), cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); out.Close(); close(p.exited) }()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// stop stops the children, last started first.
func (l *Lab) stop() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if p.stop != nil {
			p.stop()
		} else {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		// Whatever it left in its process group (Dovecot's and Postfix's
		// children exit with their master; this is for a stuck one).
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	l.mu.Lock()
	stopIngest := l.ingestStop
	l.ingestStop = nil
	l.mu.Unlock()
	if stopIngest != nil {
		stopIngest()
	}
}

// waitTCP waits until addr accepts connections, p exits or the deadline passes.
func waitTCP(p *proc, address string, timeout time.Duration, logFile string) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", address, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("maillab: %s exited at start:\n%s", p.name, p.tail(logFile))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("maillab: %s did not listen on %s within %s:\n%s", p.name, address, timeout, p.tail(logFile))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitBanner waits until an SMTP server at address greets with 220.
func waitBanner(p *proc, address string, timeout time.Duration, logFile string) error {
	if err := waitTCP(p, address, timeout, logFile); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	tp := textproto.NewConn(c)
	if _, _, err := tp.ReadResponse(220); err != nil {
		// A server that exits at start (a port it cannot bind) leaves
		// the answer to whoever holds the port: say which it was.
		state := "still running"
		select {
		case <-p.exited:
			state = "exited"
		case <-time.After(500 * time.Millisecond):
		}
		return fmt.Errorf("maillab: %s (%s) greeted with %v:\n%s", p.name, state, err, p.tail(logFile))
	}
	_ = tp.PrintfLine("QUIT")
	return nil
}

// tail is the end of logFile and of the process's own output (a daemon's
// messages before its logging is set up, Postfix's master's included).
func (p *proc) tail(logFile string) string {
	if p.out == "" || p.out == logFile {
		return tailOf(logFile)
	}
	return tailOf(logFile, p.out)
}

func tailOf(files ...string) string {
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(f), harness.Tail(string(data), 3000))
	}
	return b.String()
}

func writeFile(path, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), mode)
}

func chownTo(user string, paths ...string) error {
	for _, p := range paths {
		if out, err := exec.Command("chown", "-R", user, p).CombinedOutput(); err != nil {
			return fmt.Errorf("maillab: chown %s %s: %v: %s", user, p, err, out)
		}
	}
	return nil
}

// removeStale stops what labs of dead test processes left running and
// removes their directories (a killed test binary takes its children with
// it through Pdeathsig, but not the daemons those children forked).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "mailtrace-maillab-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		for _, pidFile := range []string{"postfix/queue/pid/master.pid", "dovecot/run/master.pid", "rspamd/rspamd.pid", "rsyslog/rsyslog.pid"} {
			if b, err := os.ReadFile(filepath.Join(d, pidFile)); err == nil {
				if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 1 {
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		os.RemoveAll(d)
	}
}
