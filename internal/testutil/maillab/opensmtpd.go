package maillab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"
)

// OpenSMTPD in the lab: Debian's OpenSMTPD 6.8, unpacked by hack/exim.sh
// beside Exim (it conflicts with the postfix package too), with its own
// configuration in the lab's directory: an SMTP port for the lab's
// mailboxes (delivered to the lab's Dovecot over LMTP, by mail.lmtp) and,
// for senders of the lab's domain on loopback, relaying to the remote MX;
// a queue whose messages expire after 20 s. OpenSMTPD 6.8 knows neither
// XCLIENT nor the PROXY protocol's first version: its clients are
// 127.0.0.1. It runs in the foreground (-d), logging to its stderr,
// which a second rsyslog ships with a syslog header (program smtpd), as a
// syslog daemon would. Its queue and control socket are compiled in
// (/var/spool/smtpd, /var/run/smtpd.sock): one lab with OpenSMTPD at a
// time on a machine.

// UseOpenSMTPD starts OpenSMTPD beside the lab's Postfix and points
// SendFrom (l.SMTP) at it: its scenarios send from 127.0.0.1
// (SendFrom("", "", ...)). It skips (fails under CI) when OpenSMTPD is not
// unpacked.
func (l *Lab) UseOpenSMTPD(t testing.TB) {
	t.Helper()
	prefix, err := mtaPrefix()
	if err == nil {
		err = checkUser("opensmtpd")
	}
	if err == nil {
		err = checkUser("opensmtpq")
	}
	if _, serr := os.Stat("/usr/libexec/opensmtpd/mail.lmtp"); err == nil && serr != nil {
		// its delivery helpers, run from the path compiled in
		err = errMissing{"maillab: OpenSMTPD's helpers are not in /usr/libexec/opensmtpd; " + eximHint}
	}
	if err != nil {
		fail(t, err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := l.startOpenSMTPD(prefix, port); err != nil {
		t.Fatal(err)
	}
	if err := l.shipLog("opensmtpd", l.LogFile("opensmtpd.out"), "<22>%timegenerated:::date-rfc3339% "+Hostname+" smtpd: %msg%"); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.SMTP = addr(port)
	l.mu.Unlock()
	t.Logf("maillab: opensmtpd up after %s", time.Since(t0).Round(10*time.Millisecond))
}

func (l *Lab) startOpenSMTPD(prefix string, port int) error {
	dir := l.path("opensmtpd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var users, ub []string
	for _, u := range mailboxes() {
		users = append(users, u)
		local, _, _ := strings.Cut(u, "@")
		ub = append(ub, fmt.Sprintf("%s %d:%d:%s", local, mailUID, mailUID, dir))
	}
	files := map[string]string{
		"users":    strings.Join(users, "\n") + "\n",
		"userbase": strings.Join(ub, "\n") + "\n",
		"smtpd.conf": fmt.Sprintf(`# The mail lab's OpenSMTPD (internal/testutil/maillab/opensmtpd.go).
table users file:%[1]s/users
table ub file:%[1]s/userbase
queue ttl 20s
bounce warn-interval 1h
listen on 127.0.0.1 port %[2]d hostname opensmtpd.%[5]s
action "local" lmtp "127.0.0.1:%[3]d" rcpt-to userbase <ub>
action "relay" relay host smtp://127.0.0.1:%[4]s
match from any for domain "%[5]s" rcpt-to <users> action "local"
match from local mail-from regex ".*@%[6]s$" for any action "relay"
match from socket for any action "relay"
`, dir, port, l.ports.lmtp, remotePort(l.Remote.Addr), Domain, strings.ReplaceAll(Domain, ".", `\.`)),
	}
	for name, content := range files {
		if err := writeFile(dir+"/"+name, content, 0o644); err != nil {
			return err
		}
	}
	// smtpctl (Schedule) must be setgid opensmtpq: a copy made so
	if err := copyFile(prefix+"/usr/sbin/smtpctl", dir+"/smtpctl", 0o755); err != nil {
		return err
	}
	if err := chownTo("root:opensmtpq", dir+"/smtpctl"); err != nil {
		return err
	}
	if err := os.Chmod(dir+"/smtpctl", 0o755|os.ModeSetgid); err != nil {
		return err
	}
	if err := cleanSpool(); err != nil {
		return err
	}
	smtpd := prefix + "/usr/sbin/smtpd"
	if out, err := runOut(smtpd, "-n", "-f", dir+"/smtpd.conf"); err != nil {
		return fmt.Errorf("maillab: smtpd -n (config check): %v\n%s", err, out)
	}
	p, err := l.spawn("opensmtpd", nil, smtpd, "-d", "-f", dir+"/smtpd.conf")
	if err != nil {
		return err
	}
	return waitBanner(p, addr(port), time.Minute, l.LogFile("opensmtpd.out"))
}

// Schedule asks OpenSMTPD to retry one envelope (or message) now
// (smtpctl schedule <id>): its own backoff is minutes.
func (l *Lab) Schedule(id string) error {
	if out, err := runOut(l.path("opensmtpd", "smtpctl"), "schedule", id); err != nil {
		return fmt.Errorf("maillab: smtpctl schedule %s: %v: %s", id, err, out)
	}
	return nil
}

// Attempts returns the envelope OpenSMTPD queued for rcpt (its log's
// "smtp envelope evpid=... to=<rcpt>") and how many delivery attempts of
// it the log shows so far ("mta delivery evpid=..."); "" while there is
// none.
func (l *Lab) Attempts(rcpt string) (evpid string, attempts int) {
	b, err := os.ReadFile(l.LogFile("opensmtpd.out"))
	if err != nil {
		return "", 0
	}
	for line := range strings.Lines(string(b)) {
		if evpid == "" {
			if strings.Contains(line, " smtp envelope evpid=") && strings.Contains(line, " to=<"+rcpt+">") {
				_, rest, _ := strings.Cut(line, " evpid=")
				evpid, _, _ = strings.Cut(rest, " ")
			}
			continue
		}
		if strings.Contains(line, " mta delivery evpid="+evpid+" ") {
			attempts++
		}
	}
	return evpid, attempts
}

// spool is OpenSMTPD's queue, compiled in.
const spool = "/var/spool/smtpd"

// cleanSpool empties the queue an earlier lab's OpenSMTPD left: its
// messages were for that lab's ports, and a delivery to a port nobody
// listens on makes OpenSMTPD disable its route to 127.0.0.1, the remote
// MX's too, for minutes. Only when no OpenSMTPD runs (its control socket
// answers nobody).
func cleanSpool() error {
	if c, err := net.Dial("unix", "/var/run/smtpd.sock"); err == nil {
		c.Close()
		return errors.New("maillab: an OpenSMTPD already runs on this machine (/var/run/smtpd.sock answers): its queue and control socket are compiled in, one lab with OpenSMTPD at a time")
	}
	for _, d := range []string{"queue", "incoming", "temporary", "offline", "corrupt", "purge"} {
		entries, _ := os.ReadDir(spool + "/" + d)
		for _, e := range entries {
			if err := os.RemoveAll(spool + "/" + d + "/" + e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}
