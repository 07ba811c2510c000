package maillab

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"
)

// Exim in the lab: Debian's Exim 4.96 (exim4-daemon-heavy), unpacked by
// hack/exim.sh into the per-user cache (it conflicts with the postfix
// package), with its own configuration in the lab's directory: an SMTP
// port playing port 25 and a submission port (AUTH PLAIN, the lab's
// Password), both taking the client's address from a PROXY protocol header
// sent from ProxyFrom (Exim 4.96 has no XCLIENT); the lab's virtual alias
// table as a redirect router, its mailboxes delivered to the lab's Dovecot
// over LMTP, every other domain to the remote MX; ACLs that refuse an
// unknown mailbox (Unknown user), relaying without authentication (relay
// not permitted) and SenderAccess's sender (4.3.1, deferred); rspamd
// through the spam ACL (its normal worker, rspamd.go): GTUBE refused
// after DATA, its add-header variant marked X-Spam, SoftRejectSender
// deferred; retries every 5 s for 15 s. Exim writes its own log file (log_file_path, not
// syslog), which a second rsyslog ships as the first does Postfix's
// maillog: the ingester knows its lines by their shape.

// eximHint says how to get Exim.
const eximHint = "run hack/exim.sh as root (`make test-maillab` does), which unpacks Debian's exim4-daemon-heavy and opensmtpd into the per-user cache and creates the Debian-exim user"

// mtaPrefix returns the directory hack/exim.sh unpacked Exim and
// OpenSMTPD into.
func mtaPrefix() (string, error) {
	cache := os.Getenv("MAILTRACE_CACHE")
	if cache == "" {
		dir := os.Getenv("XDG_CACHE_HOME")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", errMissing{"maillab: no home directory for the per-user cache: " + err.Error()}
			}
			dir = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(dir, "mailtrace")
	}
	m, _ := filepath.Glob(filepath.Join(cache, "mta", "exim-*", "usr", "sbin", "exim4"))
	if len(m) == 0 {
		return "", errMissing{"maillab: Exim is not unpacked in " + filepath.Join(cache, "mta") + "; " + eximHint}
	}
	sort.Strings(m)
	return strings.TrimSuffix(m[len(m)-1], "/usr/sbin/exim4"), nil
}

// copyExim copies Exim's binary and the libraries unpacked beside it into
// dir/bin and dir/lib, and returns the binary and the library directory.
func copyExim(prefix, dir string) (exim, libs string, err error) {
	exim, libs = dir+"/bin/exim4", dir+"/lib"
	for _, d := range []string{dir + "/bin", libs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
	}
	files, _ := filepath.Glob(prefix + "/usr/lib/x86_64-linux-gnu/*.so*")
	more, _ := filepath.Glob(prefix + "/usr/lib/*.so*")
	for _, f := range append(files, more...) {
		if err := copyFile(f, libs+"/"+filepath.Base(f), 0o644); err != nil {
			return "", "", err
		}
	}
	return exim, libs, copyFile(prefix+"/usr/sbin/exim4", exim, 0o755)
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from) // follows a library's symlink
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode)
}

// UseExim starts Exim beside the lab's Postfix and points Send and Submit
// (l.SMTP, l.Submission) at it: the lab's scenarios then run through
// Exim, its log into the same ingester. It skips (fails under CI) when
// Exim is not unpacked.
func (l *Lab) UseExim(t testing.TB) {
	t.Helper()
	prefix, err := mtaPrefix()
	if err == nil {
		err = checkUser("Debian-exim")
	}
	if err != nil {
		fail(t, err)
	}
	smtp, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sub, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := l.startExim(prefix, smtp, sub); err != nil {
		t.Fatal(err)
	}
	if err := l.shipLog("exim", l.path("exim", "log", "mainlog"), "<22>%msg%"); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.SMTP, l.Submission, l.proxied = addr(smtp), addr(sub), true
	l.mu.Unlock()
	if err := l.probe(t); err != nil {
		t.Fatalf("maillab: through Exim: %v\n%s", err, tailOf(l.path("exim", "log", "mainlog"), l.path("exim", "log", "paniclog")))
	}
	t.Logf("maillab: exim up and its probe delivered after %s", time.Since(t0).Round(10*time.Millisecond))
}

func checkUser(u string) error {
	if _, err := runOut("id", u); err != nil {
		return errMissing{"maillab: no `" + u + "` OS user; " + eximHint}
	}
	return nil
}

func (l *Lab) startExim(prefix string, smtp, sub int) error {
	dir := l.path("exim")
	for _, d := range []string{dir, dir + "/spool", dir + "/log"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := chownTo("Debian-exim", dir+"/spool", dir+"/log"); err != nil {
		return err
	}
	var users, aliases []string
	users = append(users, mailboxes()...)
	for a, members := range Aliases {
		aliases = append(aliases, a+": "+strings.Join(members, ", "))
	}
	sort.Strings(aliases)
	files := map[string]string{
		"users":     strings.Join(users, "\n") + "\n",
		"aliases":   strings.Join(aliases, "\n") + "\n",
		"exim.conf": l.eximConf(dir+"/bin/exim4", dir, smtp, sub),
	}
	for name, content := range files {
		if err := writeFile(dir+"/"+name, content, 0o644); err != nil {
			return err
		}
	}
	// Exim drops to its user, which cannot reach a cache under root's
	// home: it runs from a copy in the lab's directory (not setuid, so
	// that the loader honours LD_LIBRARY_PATH when it re-executes itself).
	exim, libs, err := copyExim(prefix, dir)
	if err != nil {
		return err
	}
	env := []string{"LD_LIBRARY_PATH=" + libs}
	cmd := append([]string{"env"}, env...)
	if out, err := runOut(append(cmd, exim, "-C", dir+"/exim.conf", "-bV")...); err != nil {
		return fmt.Errorf("maillab: exim -bV (config check): %v\n%s", err, out)
	}
	p, err := l.spawn("exim", env, exim, "-C", dir+"/exim.conf", "-bdf", "-q5s")
	if err != nil {
		return err
	}
	logs := []string{dir + "/log/mainlog", dir + "/log/paniclog", l.LogFile("exim.out")}
	if err := waitBanner(p, addr(smtp), time.Minute, logs[0]); err != nil {
		return fmt.Errorf("%w%s", err, tailOf(logs[1:]...))
	}
	return waitBanner(p, addr(sub), time.Minute, logs[0])
}

func (l *Lab) eximConf(exim, dir string, smtp, sub int) string {
	storage := strings.Fields(SenderAccess[0])
	return fmt.Sprintf(`# The mail lab's Exim (internal/testutil/maillab/exim.go).
primary_hostname = exim.%[7]s
qualify_domain = %[7]s
domainlist local_domains = %[7]s
daemon_smtp_ports = %[2]d : %[3]d
local_interfaces = <; 127.0.0.1
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
log_selector = +subject +pid +incoming_port
pid_file_path = %[1]s/exim.pid
# Loopback is the lab's Internet: no DNS, no ident, no TLS.
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
smtputf8_advertise_hosts =
# The lab's clients claim their address with a PROXY header from here.
hosts_proxy = %[8]s
smtp_accept_max = 200
acl_smtp_rcpt = acl_check_rcpt
# rspamd scans what the DATA ACL gets, over its HTTP protocol (its normal
# worker; the lab's Postfix asks its proxy worker as a milter).
spamd_address = 127.0.0.1 %[12]d variant=rspamd
acl_smtp_data = acl_check_data
never_users = root
# Exim re-executes itself (queue runs, deliveries): from where it is
# unpacked, with its libraries.
exim_path = %[11]s
keep_environment = LD_LIBRARY_PATH : TZ

begin acl

acl_check_rcpt:
  accept  hosts = :
  defer   senders = %[9]s
          message = %[10]s
  accept  authenticated = *
  deny    message = relay not permitted
          !domains = +local_domains
  deny    message = Unknown user
          !verify = recipient
  accept

# rspamd's verdict on every message received over SMTP (the lab's Postfix
# milter scans every one too), acted on as rspamd's integration guide for
# Exim does: a soft reject deferred, a reject refused, an "add header"
# marked (X-Spam: Yes, which the lab's Sieve scripts file into Junk); the
# action and score logged.
acl_check_data:
  warn    spam        = nobody:true
          log_message = rspamd: $spam_action, score $spam_score
  defer   message     = 451 4.7.1 Try again later
          condition   = ${if eq{$spam_action}{soft reject}}
  deny    message     = 554 5.7.1 Spam message rejected
          condition   = ${if eq{$spam_action}{reject}}
  warn    condition   = ${if eq{$spam_action}{add header}}
          add_header  = X-Spam: Yes
          add_header  = X-Spam-Score: $spam_score
  accept

begin routers

aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part@$domain}lsearch{%[1]s/aliases}}

mailboxes:
  driver = manualroute
  domains = +local_domains
  condition = ${lookup{$local_part@$domain}lsearch{%[1]s/users}{yes}{no}}
  route_list = * 127.0.0.1
  transport = dovecot_lmtp
  self = send

remote:
  driver = manualroute
  domains = ! +local_domains
  route_list = * 127.0.0.1
  transport = remote_smtp
  self = send

begin transports

dovecot_lmtp:
  driver = smtp
  protocol = lmtp
  port = %[4]d
  allow_localhost
  hosts_avoid_tls = *

remote_smtp:
  driver = smtp
  port = %[5]s
  allow_localhost
  hosts_avoid_tls = *
  hosts_try_chunking = :
  hosts_try_prdr = :

begin retry

# The lab's queue runs fast: a retry every 5 s, given up after 15 s.
*  *  F,15s,5s

begin authenticators

PLAIN:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if eq{$auth3}{%[6]s}}
  server_set_id = $auth2
`, dir, smtp, sub, l.ports.lmtp, remotePort(l.Remote.Addr), Password, Domain, ProxyFrom, storage[0], strings.Join(storage[2:], " "), exim, l.ports.scan)
}

// shipLog runs a private rsyslogd (named name) that tails file and
// forwards each line to the ingester as startRsyslog does for Postfix's
// maillog, as the template says (rsyslog's: "<22>%msg%" forwards it
// unchanged).
func (l *Lab) shipLog(name, file, template string) error {
	dir := l.path(name, "rsyslog")
	if err := os.MkdirAll(dir+"/work", 0o755); err != nil {
		return err
	}
	l.mu.Lock()
	certs := l.certs
	l.mu.Unlock()
	conf := fmt.Sprintf(`# The mail lab's log shipper for %[7]s (internal/testutil/maillab).
global(
  workDirectory="%[1]s/work"
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="%[2]s"
  defaultNetstreamDriverCertFile="%[3]s"
  defaultNetstreamDriverKeyFile="%[4]s"
)
module(load="imfile")
template(name="maillab_raw" type="string" string="%[8]s")
input(type="imfile" file="%[5]s" tag="%[7]s" ruleset="ship" freshStartTail="off")
ruleset(name="ship") {
  action(type="omfwd" target="127.0.0.1" port="%[6]d" protocol="tcp"
    tcp_framing="octet-counted" template="maillab_raw"
    streamDriver="gtls" streamDriverMode="1"
    streamDriverAuthMode="x509/name" streamDriverPermittedPeers="localhost"
    action.resumeRetryCount="-1" action.resumeInterval="1"
    queue.type="LinkedList" queue.size="100000")
}
`, dir, certs.ca, certs.clientCert, certs.clientKey, file, l.ports.syslog, name, template)
	if err := writeFile(dir+"/rsyslog.conf", conf, 0o644); err != nil {
		return err
	}
	if out, err := runOut("/usr/sbin/rsyslogd", "-N1", "-f", dir+"/rsyslog.conf"); err != nil {
		return fmt.Errorf("maillab: rsyslogd -N1 (%s's config check): %v\n%s", name, err, out)
	}
	_, err := l.spawn(name+"-rsyslog", nil, "/usr/sbin/rsyslogd", "-n", "-f", dir+"/rsyslog.conf", "-i", dir+"/rsyslog.pid")
	return err
}
