package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keys of the credentials Secret a ReportStore names.
const (
	AccessKeyIDKey     = "accessKeyID"
	SecretAccessKeyKey = "secretAccessKey"
	SessionTokenKey    = "sessionToken"
)

// DefaultCABundleKey is the key of a CA bundle when KeyReference.Key is empty.
const DefaultCABundleKey = "ca.crt"

// Condition returns the condition of the given type, or nil.
func (rs *ReportStore) Condition(t ConditionType) *metav1.Condition {
	return meta.FindStatusCondition(rs.Status.Conditions, string(t))
}

// IsAvailable reports whether the last check of the current spec succeeded.
func (rs *ReportStore) IsAvailable() bool {
	c := rs.Condition(ConditionAvailable)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == rs.Generation
}

// KeyOrDefault returns the key, ca.crt when empty.
func (k *KeyReference) KeyOrDefault() string {
	if k.Key == "" {
		return DefaultCABundleKey
	}
	return k.Key
}
