// Package admission embeds the operator's admission policies, so that
// `mailtrace demo` (and the tests) install exactly what this directory
// holds.
package admission

import (
	_ "embed"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

//go:embed created-by.yaml
var createdBy string

// CreatedBy returns the ValidatingAdmissionPolicy that makes an autosaved
// query's creator unforgeable, and its binding (created-by.yaml).
func CreatedBy() (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	docs := strings.Split(createdBy, "\n---\n")
	if len(docs) != 2 {
		return nil, nil, fmt.Errorf("config/admission/created-by.yaml: %d documents, want the policy and its binding", len(docs))
	}
	var pol admissionregistrationv1.ValidatingAdmissionPolicy
	var bind admissionregistrationv1.ValidatingAdmissionPolicyBinding
	for i, o := range []any{&pol, &bind} {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), o); err != nil {
			return nil, nil, fmt.Errorf("config/admission/created-by.yaml: %w", err)
		}
	}
	return &pol, &bind, nil
}
