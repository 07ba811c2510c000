package maillab

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// mailUID is the owner of the lab's mailboxes: Debian's `mail` user (8).
const mailUID = 8

// startDovecot runs a private Dovecot in the foreground: LMTP (with the
// Sieve and quota plugins) on a loopback port for Postfix's deliveries,
// and the auth service on another for Postfix's SASL. Users are a
// passwd-file, one Maildir each under mail/, owned by the `mail` user;
// only QuotaUser has a quota.
func (l *Lab) startDovecot() error {
	dir := l.path("dovecot")
	mail := l.path("mail")
	for _, d := range []string{l.path("dovecot", "run"), mail} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var users strings.Builder
	for _, u := range mailboxes() {
		extra := ""
		if u == QuotaUser {
			extra = "userdb_quota_rule=*:storage=1K"
		}
		fmt.Fprintf(&users, "%s:{PLAIN}%s:%d:%d::%s/%s::%s\n", u, Password, mailUID, mailUID, mail, u, extra)
	}
	if err := writeFile(dir+"/users", users.String(), 0o644); err != nil {
		return err
	}
	if err := chownTo("mail:mail", mail); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# The mail lab's private Dovecot (internal/testutil/maillab).
protocols = lmtp
instance_name = maillab-%[6]d
base_dir = %[1]s/run
state_dir = %[1]s/run/state
log_path = %[2]s
info_log_path = %[2]s
# syslog's timestamp: rsyslog ships the lines as Dovecot's syslog ones
log_timestamp = "%%b %%e %%H:%%M:%%S "
# Sieve's rejections and vacation replies go out through the lab's Postfix
submission_host = 127.0.0.1:%[8]d
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = %[5]d
last_valid_uid = %[5]d
mail_location = maildir:~/Maildir
mail_plugins = $mail_plugins quota
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%Lu %[1]s/users
}
userdb {
  driver = passwd-file
  args = username_format=%%Lu %[1]s/users
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[3]d
  }
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = %[4]d
  }
}
protocol lmtp {
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@%[7]s
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
  # No limit but QuotaUser's (a userdb field).
  quota = maildir:User quota
  quota_rule = *:storage=0
}
`, dir, l.LogFile("dovecot.log"), l.ports.lmtp, l.ports.auth, mailUID, l.ports.lmtp, Domain, l.ports.smtp)
	if err := writeFile(dir+"/dovecot.conf", conf, 0o644); err != nil {
		return err
	}
	p, err := l.spawn("dovecot", nil, "/usr/sbin/dovecot", "-F", "-c", dir+"/dovecot.conf")
	if err != nil {
		return err
	}
	logs := []string{l.LogFile("dovecot.log"), l.LogFile("dovecot.out")}
	if err := waitTCP(p, addr(l.ports.lmtp), time.Minute, logs[0]); err != nil {
		return fmt.Errorf("%w%s", err, tailOf(logs[1]))
	}
	return waitTCP(p, addr(l.ports.auth), time.Minute, logs[0])
}

// SetSieve installs script as user's active Sieve script (user is an
// address of the lab's domain).
func (l *Lab) SetSieve(user, script string) error {
	home := l.path("mail", strings.ToLower(user))
	if err := writeFile(home+"/.dovecot.sieve", script, 0o644); err != nil {
		return err
	}
	return chownTo("mail:mail", home)
}

// Mailbox returns the files of user's mailbox folder ("" or "INBOX" for
// the inbox, else a folder name such as "Junk"): the messages Dovecot stored.
func (l *Lab) Mailbox(user, folder string) []string {
	dir := l.path("mail", strings.ToLower(user), "Maildir")
	if folder != "" && folder != "INBOX" {
		dir += "/." + folder
	}
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(dir + "/" + sub)
		for _, e := range entries {
			out = append(out, dir+"/"+sub+"/"+e.Name())
		}
	}
	return out
}
