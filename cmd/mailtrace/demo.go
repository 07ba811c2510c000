//go:build demo

package main

import (
	"github.com/spf13/cobra"

	"github.com/mailtrace/mailtrace/internal/democmd"
)

// demoCommand is `mailtrace demo` (internal/democmd, which links envtest).
func demoCommand() *cobra.Command { return democmd.NewCommand() }
