package ingest

import (
	"time"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/ingest/source/dovecot"
	"github.com/mailtrace/mailtrace/internal/ingest/source/exim"
	"github.com/mailtrace/mailtrace/internal/ingest/source/opensmtpd"
	"github.com/mailtrace/mailtrace/internal/ingest/source/postfix"
	"github.com/mailtrace/mailtrace/internal/ingest/source/rspamd"
	"github.com/mailtrace/mailtrace/internal/ingest/source/stalwart"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// sources are the log sources a Correlator reads, each a package under
// source/ that implements source.Source: a line goes to the first that
// claims it. A new source is its package and one line here.
var sources = []source.Registration{
	{Name: "postfix", New: postfix.New},
	{Name: "stalwart", New: stalwart.New},
	{Name: "exim", New: exim.New},
	{Name: "opensmtpd", New: opensmtpd.New},
	{Name: "rspamd", New: rspamd.New},
	{Name: "dovecot", New: dovecot.New},
}

// shapes read, ahead of the syslog parser, the lines of a source that
// come without a syslog header, known by their shape: Exim's own log file
// ("2026-12-05 10:00:00 [pid] 1ajLoq-0001wC-Pk <= ..."), named program
// "exim" for the Exim source to claim. A shape that is not the line's
// says so in a few byte comparisons; a line no shape reads is syslog.
var shapes = []func(l *syslog.Line, line string, loc *time.Location) bool{
	exim.ParseMainlog,
	stalwart.ParseLogFile,
}

func shaped(l *syslog.Line, line string, loc *time.Location) bool {
	for _, f := range shapes {
		if f(l, line, loc) {
			return true
		}
	}
	return false
}
