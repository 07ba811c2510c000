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

// shaped reads, ahead of the syslog parser, a line of a source that comes
// without a syslog header, known by its shape: Exim's own log file
// ("2026-12-05 10:00:00 [pid] 1ajLoq-0001wC-Pk <= ...", program "exim"
// for the Exim source to claim), Stalwart's ("2025-01-17T16:59:03Z INFO
// ..."). A shape that is not the line's says so in a few byte
// comparisons; a line no shape reads is syslog. A new shape is one more
// call here: direct calls, not a slice of functions, for l (the engine's
// line being prepared) to stay on the stack; through a function value it
// escaped, and every line read was an allocation.
//
// Both start with a date ("2026-12-05"), then a space (Exim's) or a 'T'
// (Stalwart's, as an RFC 3339 syslog line does): those two bytes pick the
// one shape a line may be, ahead of any call.
func shaped(l *syslog.Line, line string, loc *time.Location) bool {
	if !mayBeShaped(line) {
		return false
	}
	if line[10] == ' ' {
		return exim.ParseMainlog(l, line, loc)
	}
	return stalwart.ParseLogFile(l, line, loc)
}

// mayBeShaped is shaped's first test, inlined where a line is prepared:
// most lines need no call.
func mayBeShaped(line string) bool {
	return len(line) >= 20 && line[4] == '-' && (line[10] == ' ' || line[10] == 'T')
}
