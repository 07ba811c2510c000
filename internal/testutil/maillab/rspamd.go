package maillab

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// startRspamd runs rspamd in the foreground with a configuration of its
// own: the stock modules and scores (Debian's /etc/rspamd), no Redis (the
// modules that need it disable themselves), one proxy worker in milter mode
// that scans by itself (Postfix's milter), one normal worker (the scanner
// Exim's spam ACL asks over rspamd's HTTP protocol, spamd_address ...
// variant=rspamd; exim.go), no controller worker, DNS pointed at a closed
// port so that network checks fail at once instead of timing out, and the
// GTUBE test patterns on (GTUBE rejects; its variants add a header or
// rewrite the subject). It runs as root (-i), which the lab may.
//
// Compiling its regular expressions and the URL suffix list (hyperscan)
// takes 30 to 60 seconds; the result is kept in the per-machine cache
// (~/.cache/mailtrace/maillab), after which rspamd starts in about 3.
func (l *Lab) startRspamd() error {
	dir := l.path("rspamd")
	for _, d := range []string{dir + "/db", dir + "/local"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := writeRspamdLocal(dir + "/local"); err != nil {
		return err
	}
	if err := writeRspamdNoRDNS(dir + "/local"); err != nil {
		return err
	}
	hs := hsCacheDir()
	if err := os.MkdirAll(hs, 0o755); err != nil {
		return err
	}
	// Our options override the stock ones the way rspamd's own
	// override.d does: an include of priority 10 (a plain second
	// assignment would not win).
	override := fmt.Sprintf(`dns {
  nameserver = ["127.0.0.1:9"];
  timeout = 0.1s;
  retransmits = 1;
}
enable_test_patterns = true;
hs_cache_dir = "%s";
`, hs)
	if err := writeFile(dir+"/options-override.inc", override, 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# The mail lab's rspamd (internal/testutil/maillab).
.include "$CONFDIR/common.conf"
options {
  pidfile = "%[1]s/rspamd.pid";
  .include "$CONFDIR/options.inc"
  .include(priority=10) "%[1]s/options-override.inc"
}
logging {
  type = "file";
  filename = "%[2]s";
  level = "info";
}
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:%[3]d";
  milter = yes;
  timeout = 120s;
  upstream "local" {
    default = yes;
    self_scan = yes;
  }
  count = 1;
  spam_header = "X-Spam";
  reject_message = "Spam message rejected";
}
worker "normal" {
  bind_socket = "127.0.0.1:%[4]d";
  count = 1;
  task_timeout = 8s;
}
lua = "$RULESDIR/rspamd.lua"
.include "$CONFDIR/metrics.conf"
.include "$CONFDIR/actions.conf"
.include "$CONFDIR/groups.conf"
.include "$CONFDIR/composites.conf"
.include "$CONFDIR/statistic.conf"
.include "$CONFDIR/modules.conf"
.include "$CONFDIR/settings.conf"
`, dir, l.LogFile("rspamd.log"), l.ports.milter, l.ports.scan)
	if err := writeFile(dir+"/rspamd.conf", conf, 0o644); err != nil {
		return err
	}
	p, err := l.spawn("rspamd", nil, "/usr/bin/rspamd", "-f", "-i", "-c", dir+"/rspamd.conf",
		"--var=DBDIR="+dir+"/db", "--var=RUNDIR="+dir, "--var=LOGDIR="+l.path("log"),
		"--var=LOCAL_CONFDIR="+dir+"/local")
	if err != nil {
		return err
	}
	for _, port := range []int{l.ports.milter, l.ports.scan} {
		if err := waitTCP(p, addr(port), 3*time.Minute, l.LogFile("rspamd.log")); err != nil {
			return fmt.Errorf("%w%s", err, tailOf(l.LogFile("rspamd.out")))
		}
	}
	return nil
}

// writeRspamdNoRDNS turns off rspamd's checks of a client without a name
// (HFILTER_HOSTNAME_UNKNOWN, 2.5 points; RDNS_NONE, 1): the lab has no DNS,
// and Exim's clients, whose address a PROXY header gives, have no name
// (no host lookup), where Postfix's name themselves (XCLIENT NAME=). With
// them, a plain message from outside through Exim scored 4 to 6 (the DNS
// checks' failures varying) and was greylisted or marked now and then;
// through Postfix it is not.
func writeRspamdNoRDNS(dir string) error {
	if err := os.MkdirAll(dir+"/local.d", 0o755); err != nil {
		return err
	}
	if err := writeFile(dir+"/local.d/hfilter.conf", "hostname_enabled = false;\n", 0o644); err != nil {
		return err
	}
	return writeFile(dir+"/local.d/headers_group.conf", "symbols = {\n  \"RDNS_NONE\" {\n    weight = 0.0;\n  }\n}\n", 0o644)
}

// hsCacheDir is where rspamd's compiled regular expressions are kept
// across runs: $XDG_CACHE_HOME or ~/.cache, under mailtrace/maillab.
func hsCacheDir() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "mailtrace", "maillab", "rspamd-hs")
}
