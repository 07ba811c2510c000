// Command kubectl-mailtrace is the kubectl plugin: `kubectl mailtrace run`,
// `get`, `list`, `details` and `download`, with kubectl's usual flags. It
// links the API types and a client only (deps_test.go keeps it so).
package main

import (
	"os"

	"github.com/mailtrace/mailtrace/internal/plugin"
)

func main() {
	os.Exit(plugin.Main(os.Args[1:]))
}
