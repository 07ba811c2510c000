//go:build !demo

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// demoCommand, in a binary built without the demo tag (the operator's
// image), is a hidden `demo` that says where the demo is.
func demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "demo",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this mailtrace was built without the demo (it would link a local control plane): run make demo, or go build -tags demo ./cmd/mailtrace")
		},
	}
}
