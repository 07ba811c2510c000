// Command refgen writes docs/reference.md from the CRDs in config/crd/bases,
// and README's generated tables (the reasons of docs/troubleshooting.md, the
// commands of mailtrace and kubectl-mailtrace) (`make docs`). Run it from
// the repository root. README's recorded outputs come from a demo run:
// go run ./docs/readmegen.
package main

import (
	"fmt"
	"os"

	"github.com/mailtrace/mailtrace/docs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "refgen:", err)
		os.Exit(1)
	}
}

func run() error {
	b, err := docs.Reference("config/crd/bases")
	if err != nil {
		return err
	}
	if err := os.WriteFile(docs.ReferenceFile, b, 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", docs.ReferenceFile)
	readme, err := os.ReadFile(docs.ReadmeFile)
	if err != nil {
		return err
	}
	ts, err := os.ReadFile(docs.TroubleshootingFile)
	if err != nil {
		return err
	}
	if readme, err = docs.GenerateReadmeTables(readme, ts); err != nil {
		return err
	}
	if err := os.WriteFile(docs.ReadmeFile, readme, 0o644); err != nil {
		return err
	}
	fmt.Println("wrote the generated tables of", docs.ReadmeFile)
	return nil
}
