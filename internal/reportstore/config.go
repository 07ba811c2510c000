package reportstore

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/objectstore"
)

// ErrCredentialsMissing: the credentials Secret, one of its keys, or the CA
// bundle a ReportStore names is missing.
var ErrCredentialsMissing = errors.New("credentials missing")

// Config builds the object-store configuration of rs, reading its
// credentials Secret (and CA bundle) from rs's own namespace with r (an
// uncached reader: the manager never caches Secrets). Nothing is contacted.
func Config(ctx context.Context, r client.Reader, rs *v1alpha1.ReportStore) (objectstore.Config, error) {
	cfg := objectstore.Config{
		Endpoint: rs.Spec.Endpoint,
		Bucket:   rs.Spec.Bucket,
		Prefix:   rs.Spec.Prefix,
		Region:   rs.Spec.Region,
		Insecure: rs.Spec.Insecure,
		SSE:      rs.Spec.ServerSideEncryption,
	}
	name := rs.Spec.CredentialsSecretRef.Name
	sec := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: name}, sec); err != nil {
		return cfg, missing(err, "credentials Secret %s/%s", rs.Namespace, name)
	}
	cfg.AccessKey = string(sec.Data[v1alpha1.AccessKeyIDKey])
	cfg.SecretKey = string(sec.Data[v1alpha1.SecretAccessKeyKey])
	cfg.SessionToken = string(sec.Data[v1alpha1.SessionTokenKey])
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return cfg, fmt.Errorf("%w: Secret %s/%s needs the keys %s and %s", ErrCredentialsMissing,
			rs.Namespace, name, v1alpha1.AccessKeyIDKey, v1alpha1.SecretAccessKeyKey)
	}
	if ca := rs.Spec.CABundle; ca != nil {
		key := ca.KeyOrDefault()
		var data []byte
		switch {
		case ca.SecretName != "":
			s := &corev1.Secret{}
			if err := r.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: ca.SecretName}, s); err != nil {
				return cfg, missing(err, "CA bundle Secret %s/%s", rs.Namespace, ca.SecretName)
			}
			data = s.Data[key]
		case ca.ConfigMapName != "":
			cm := &corev1.ConfigMap{}
			if err := r.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: ca.ConfigMapName}, cm); err != nil {
				return cfg, missing(err, "CA bundle ConfigMap %s/%s", rs.Namespace, ca.ConfigMapName)
			}
			data = []byte(cm.Data[key])
			if len(data) == 0 {
				data = cm.BinaryData[key]
			}
		}
		if len(data) == 0 {
			return cfg, fmt.Errorf("%w: the CA bundle has no key %q", ErrCredentialsMissing, key)
		}
		cfg.CABundle = data
	}
	return cfg, nil
}

func missing(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %s not found", ErrCredentialsMissing, what)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}
