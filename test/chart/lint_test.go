package chart_test

import (
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// `helm lint --strict` for every combination: Chart.yaml, the values schema,
// templates that render to valid YAML with valid names, no deprecated APIs
// for the Kubernetes version envtest runs.
func TestHelmLintStrict(t *testing.T) {
	kv := &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	for _, tc := range combinations {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(tc.values))
			if err != nil {
				t.Fatal(err)
			}
			l := lint.AllWithKubeVersion(chartDir(t), vals.AsMap(), "mailtrace", kv)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}
