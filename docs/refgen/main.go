// Command refgen writes docs/reference.md from the CRDs in config/crd/bases
// (`make docs`). Run it from the repository root.
package main

import (
	"fmt"
	"os"

	"github.com/mailtrace/mailtrace/docs"
)

func main() {
	b, err := docs.Reference("config/crd/bases")
	if err == nil {
		err = os.WriteFile(docs.ReferenceFile, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "refgen:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", docs.ReferenceFile)
}
