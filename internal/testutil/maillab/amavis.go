package maillab

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"
)

// The amavis variant of the filter hop: amavisd-new as Postfix's
// content_filter (on AmavisPort, the port the ingester takes for a
// content filter by default), handing each message back to a second smtpd
// on loopback (re-injection) that neither filters nor checks again. One
// message is then two Postfix hops with amavis between them, and one
// trace. Amavis runs without SpamAssassin and without a virus scanner: its
// verdicts are CLEAN, or BANNED for an attachment of a banned name
// (BannedName), which it discards and quarantines.
const (
	AmavisPort = 10024
	// BannedName is an attachment name amavis bans (.exe).
	BannedName = "invoice.exe"
)

const amavisHint = "run hack/maillab.sh as root, which installs Debian's amavisd-new"

// UseAmavis makes amavis Postfix's content filter, ships its log into the
// ingester like the others' (program "amavis"), and checks that a message
// crosses both hops. It skips (fails under CI) when amavisd-new is not
// installed.
func (l *Lab) UseAmavis(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/amavisd"); err != nil {
		fail(t, errMissing{"maillab: amavisd (amavisd-new) is not installed; " + amavisHint})
	}
	if err := checkUser("amavis"); err != nil {
		fail(t, errMissing{"maillab: no `amavis` OS user; " + amavisHint})
	}
	reinject, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := l.startAmavis(reinject); err != nil {
		t.Fatal(err)
	}
	// amavis' log file line: "Dec  6 03:24:50 mx.lab.test /usr/sbin/amavisd-new[4711]: (04711-01) Passed CLEAN ...":
	// sent as amavis' syslog line (program "amavis", the host of Postfix's lines)
	host, err := maillogHost(l.LogFile("maillog"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.shipLog("amavis", l.LogFile("amavis.log"),
		`<22>%msg:1:15% `+host+` amavis[%msg:R,ERE,1,BLANK:\\[([0-9]+)[]]: --end%]: %msg:R,ERE,1,BLANK:[]]: (.*)$--end%`); err != nil {
		t.Fatal(err)
	}
	if err := l.postconf(
		"content_filter=amavis:[127.0.0.1]:" + strconv.Itoa(AmavisPort),
	); err != nil {
		t.Fatal(err)
	}
	if err := l.postconfMaster(amavisMaster(reinject)); err != nil {
		t.Fatal(err)
	}
	if err := l.probe(t); err != nil {
		t.Fatalf("maillab: through amavis: %v\n%s", err, tailOf(l.LogFile("amavis.log"), l.LogFile("amavis.out")))
	}
	t.Logf("maillab: amavis up and its probe delivered after %s", time.Since(t0).Round(10*time.Millisecond))
}

// amavisMaster is what master.cf gets: the transport to amavis and the
// re-injection smtpd.
func amavisMaster(reinject int) string {
	return fmt.Sprintf(`amavis    unix  -       -       n       -       2       smtp
  -o syslog_name=postfix/amavis
  -o smtp_data_done_timeout=1200
  -o smtp_send_xforward_command=yes
  -o disable_dns_lookups=yes
  -o max_use=20
127.0.0.1:%d inet n    -       n       -       -       smtpd
  -o syslog_name=postfix/reinject
  -o content_filter=
  -o smtpd_milters=
  -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_milters,no_address_mappings
  -o mynetworks=127.0.0.0/8
  -o smtpd_client_restrictions=
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
`, reinject)
}

// startAmavis runs amavisd-new in the foreground (as the amavis user, to
// which it drops), listening on AmavisPort and handing messages back to
// the re-injection port.
func (l *Lab) startAmavis(reinject int) error {
	// its home is amavis'; its configuration root's, in a directory
	// amavis cannot write (it checks both)
	dir := l.path("amavis", "home")
	etc := l.path("amavis", "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	for _, d := range []string{dir + "/tmp", dir + "/db", dir + "/quarantine", dir + "/var"} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`# The mail lab's amavisd-new (internal/testutil/maillab).
use strict;
$MYHOME = '%[1]s';
$TEMPBASE = "$MYHOME/tmp";
$db_home = "$MYHOME/db";
$QUARANTINEDIR = "$MYHOME/quarantine";
$pid_file = "$MYHOME/var/amavisd.pid";
$lock_file = "$MYHOME/var/amavisd.lock";
$daemon_user = 'amavis';
$daemon_group = 'amavis';
$mydomain = '%[2]s';
$myhostname = '%[3]s';
@local_domains_maps = ( ['.%[2]s'] );
@mynetworks = qw( 127.0.0.0/8 );
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = %[4]d;
@inet_acl = qw( 127.0.0.1 );
$forward_method = 'smtp:[127.0.0.1]:%[5]d';
$notify_method = $forward_method;
$max_servers = 2;
$child_timeout = 120;
$DO_SYSLOG = 0;
$LOGFILE = '%[6]s';
$log_level = 0;
$syslog_ident = 'amavis';
$enable_db = 0;
$enable_zmq = 0;
$nanny_details_level = 0;
@bypass_virus_checks_maps = (1);
@bypass_spam_checks_maps = (1);
@av_scanners = ();
@av_scanners_backup = ();
$banned_filename_re = new_RE( qr'\.exe$'i );
$final_banned_destiny = D_DISCARD;
$final_virus_destiny = D_DISCARD;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
$virus_admin = undef;
$spam_admin = undef;
$banned_admin = undef;
$warnbannedrecip = 0;
$warnbannedsender = 0;
$warnvirussender = 0;
$banned_quarantine_to = 'banned-quarantine';
$banned_files_quarantine_method = 'local:banned-%%m';
1;
`, dir, Domain, Hostname, AmavisPort, reinject, l.LogFile("amavis.log"))
	if err := writeFile(l.LogFile("amavis.log"), "", 0o644); err != nil {
		return err
	}
	if err := chownTo("amavis:amavis", dir, l.LogFile("amavis.log")); err != nil {
		return err
	}
	if err := writeFile(etc+"/amavisd.conf", conf, 0o644); err != nil {
		return err
	}
	p, err := l.spawn("amavis", nil, "/usr/sbin/amavisd", "-c", etc+"/amavisd.conf", "foreground")
	if err != nil {
		return err
	}
	return waitBanner(p, addr(AmavisPort), 2*time.Minute, l.LogFile("amavis.out"))
}

// postconf changes main.cf parameters of the lab's Postfix (postconf -e).
func (l *Lab) postconf(settings ...string) error {
	argv := append([]string{"/usr/sbin/postconf", "-c", l.path("postfix", "etc"), "-e"}, settings...)
	if out, err := runOut(argv...); err != nil {
		return fmt.Errorf("maillab: postconf %v: %v\n%s", settings, err, out)
	}
	return nil
}

// postconfMaster adds services to master.cf and reloads Postfix.
func (l *Lab) postconfMaster(services string) error {
	f, err := os.OpenFile(l.path("postfix", "etc", "master.cf"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(services); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if out, err := runOut("/usr/sbin/postfix", "-c", l.path("postfix", "etc"), "reload"); err != nil {
		return fmt.Errorf("maillab: postfix reload: %v\n%s", err, out)
	}
	return nil
}
