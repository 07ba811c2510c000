// Package samples embeds the sample manifests, so that `mailtrace demo`
// applies exactly what this directory holds.
package samples

import "embed"

// FS holds the YAML files of config/samples and the one-off default
// queries of default-queries/traces.
//
//go:embed *.yaml default-queries/traces/*.yaml
var FS embed.FS
