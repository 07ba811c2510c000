package maillab

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

// startPostfix writes the private instance's configuration and runs its
// master in the foreground (`master -d`), so the master is our child and
// dies with the test binary. `postfix check` first creates the queue
// directories with their owners (mail_owner postfix, setgid_group
// postdrop). Postfix runs without chroot, so every daemon reaches the temp
// dir's files; its log goes to maillog_file (postlogd), as there is no
// syslog here.
func (l *Lab) startPostfix() error {
	etc := l.path("postfix", "etc")
	queue := l.path("postfix", "queue")
	data := l.path("postfix", "data")
	for _, d := range []string{etc, queue, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := chownTo("postfix", data); err != nil {
		return err
	}
	lmtp := fmt.Sprintf("lmtp:inet:127.0.0.1:%d", l.ports.lmtp)
	remote := "smtp:[127.0.0.1]:" + remotePort(l.Remote.Addr)

	var users, aliases []string
	for _, u := range mailboxes() {
		users = append(users, u+" ok")
	}
	for a, members := range Aliases {
		aliases = append(aliases, a+" "+strings.Join(members, ", "))
	}
	sort.Strings(aliases)
	files := map[string]string{
		"main.cf":       l.mainCF(etc, queue, data),
		"master.cf":     l.masterCF(),
		"vmailbox":      strings.Join(users, "\n") + "\n",
		"virtual":       strings.Join(aliases, "\n") + "\n",
		"transport":     Domain + " " + lmtp + "\n" + RemoteDomain + " " + remote + "\n* " + remote + "\n",
		"header_checks": strings.Join(HeaderChecks, "\n") + "\n",
		"sender_access": strings.Join(SenderAccess, "\n") + "\n",
	}
	for name, content := range files {
		if err := writeFile(etc+"/"+name, content, 0o644); err != nil {
			return err
		}
	}
	if out, err := exec.Command("/usr/sbin/postfix", "-c", etc, "check").CombinedOutput(); err != nil {
		return fmt.Errorf("maillab: postfix check: %v\n%s\n%s", err, out, tailOf(l.LogFile("maillog")))
	}
	return l.runPostfix()
}

// runPostfix starts the master of the configured instance and waits for
// its smtpd and submission services.
func (l *Lab) runPostfix() error {
	etc := l.path("postfix", "etc")
	p, err := l.spawn("postfix", []string{"MAIL_CONFIG=" + etc}, "/usr/lib/postfix/sbin/master", "-c", etc, "-d")
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.postfix = p
	l.mu.Unlock()
	if err := waitBanner(p, l.SMTP, time.Minute, l.LogFile("maillog")); err != nil {
		return err
	}
	return waitBanner(p, l.Submission, time.Minute, l.LogFile("maillog"))
}

// RestartPostfix stops Postfix's master (SIGTERM: its daemons end, the
// queue stays) and starts it again: what was queued is delivered after.
func (l *Lab) RestartPostfix() error {
	l.mu.Lock()
	p := l.postfix
	l.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("maillab: postfix's master did not exit within 30s of SIGTERM")
	}
	l.mu.Lock()
	for i, q := range l.procs {
		if q == p {
			l.procs = append(l.procs[:i], l.procs[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	// Its daemons may outlive it for a moment and hold the ports.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ln, err := net.Listen("tcp", l.SMTP)
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("maillab: %s still taken after postfix stopped: %v", l.SMTP, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l.runPostfix()
}

func remotePort(hostport string) string {
	i := strings.LastIndexByte(hostport, ':')
	return hostport[i+1:]
}

func (l *Lab) mainCF(etc, queue, data string) string {
	return fmt.Sprintf(`# The mail lab's private Postfix instance (internal/testutil/maillab).
compatibility_level = 3.6
config_directory = %[1]s
queue_directory = %[2]s
data_directory = %[3]s
maillog_file = %[4]s
maillog_file_prefixes = %[5]s
myhostname = %[6]s
mydomain = %[7]s
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# Loopback is the lab's Internet: nothing is trusted by address.
mynetworks = 127.0.0.99/32
# The lab's clients claim outside addresses (maillab.Send, Submit).
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP lab
biff = no
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = %[7]s
virtual_mailbox_maps = texthash:%[1]s/vmailbox
virtual_alias_maps = texthash:%[1]s/virtual
virtual_transport = lmtp:inet:127.0.0.1:%[8]d
transport_maps = texthash:%[1]s/transport
header_checks = regexp:%[1]s/header_checks
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:%[9]d
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =
# Scripted refusals by sender (SenderAccess).
smtpd_sender_restrictions = check_sender_access texthash:%[1]s/sender_access
smtpd_milters = inet:127.0.0.1:%[10]d
non_smtpd_milters =
# A message is never let through unscanned.
milter_default_action = tempfail
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = yes
# Postfix 3.7 checks that an LMTP server offers SMTPUTF8 when it opens the
# connection, not when it reuses a cached one: with the cache, SMTPUTF8
# mail to Dovecot (which does not offer it) bounces or is delivered
# depending on timing. Without it, it always bounces (5.6.7).
lmtp_connection_cache_on_demand = no
# The lab's queue runs fast.
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 60s
delay_warning_time = 0
# A message the remote MX keeps deferring expires within a test's time.
maximal_queue_lifetime = 15s
bounce_queue_lifetime = 15s
`, etc, queue, data, l.LogFile("maillog"), l.path("log"), Hostname, Domain, l.ports.lmtp, l.ports.auth, l.ports.milter)
}

// masterCF is the stock master.cf without chroot, smtpd on the lab's
// port and a submission service requiring SASL.
func (l *Lab) masterCF() string {
	return fmt.Sprintf(`# service type  private unpriv  chroot  wakeup  maxproc command + args
%[1]d      inet  n       -       n       -       -       smtpd
%[2]d      inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, l.ports.smtp, l.ports.submission)
}

// mailboxes lists every mailbox address of the lab.
func mailboxes() []string {
	var out []string
	for _, u := range namedUsers {
		out = append(out, u+"@"+Domain)
	}
	for n := 1; n <= NumberedUsers; n++ {
		out = append(out, User(n))
	}
	return out
}
