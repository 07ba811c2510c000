// Package samples embeds the sample manifests, so that `mailtrace demo`
// applies exactly what this directory holds.
package samples

import "embed"

// FS holds every YAML file of config/samples.
//
//go:embed *.yaml
var FS embed.FS
