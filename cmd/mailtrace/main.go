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
	"github.com/mailtrace/mailtrace/internal/console"
)

func main() {
	// console: the Helm chart's optional in-cluster console (a client of the
	// API, acting with each user's own token).
	os.Exit(cli.Main(os.Args[1:], demoCommand(), console.NewServeCommand()))
}
