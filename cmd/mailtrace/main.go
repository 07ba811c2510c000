// Command mailtrace is the one binary: the operator's manager, the tools to
// query a trace store and load events into it, and, built with the demo tag
// (make build does), the demo. Without the tag it does not link envtest: the
// image's binary is built so (deps_test.go keeps it so).
package main

import (
	"os"
	// The IANA time zone database, for MessageTraceSchedule's timeZone:
	// the distroless image has no /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/mailtrace/mailtrace/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], demoCommand()))
}
