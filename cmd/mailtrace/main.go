// Command mailtrace is the one binary: the operator's manager, the demo, and
// the tools to query a trace store and load events into it.
package main

import (
	"os"
	// The IANA time zone database, for MessageTraceSchedule's timeZone:
	// the distroless image has no /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/mailtrace/mailtrace/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
