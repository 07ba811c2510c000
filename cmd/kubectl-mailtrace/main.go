// Command kubectl-mailtrace is the kubectl plugin: `kubectl mailtrace run`,
// `get`, `list`, `details` and `download`, with kubectl's usual flags.
package main

import (
	"os"

	"github.com/mailtrace/mailtrace/internal/cli"
)

func main() {
	os.Exit(cli.PluginMain(os.Args[1:]))
}
