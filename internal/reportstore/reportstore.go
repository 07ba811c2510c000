// Package reportstore is the report-store service the controllers share:
// it turns a ReportStore into its object-store configuration and client
// (credentials from the store's own namespace, connections through the
// namespace's egress guard), and holds the operator's default report store.
// It decides nothing about conditions; the ReportStore controller does.
package reportstore

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
	"github.com/mailtrace/mailtrace/internal/objectstore"
)

// Default is the operator-wide report store, set at install time, used by
// traces that name no ReportStore.
type Default struct {
	Store    objectstore.Store
	Endpoint string
	Bucket   string
	Prefix   string
}

// Open builds rs's object store with newStore (objectstore.New when nil).
// Its connections go through the guard of rs's namespace (g nil: none), so
// an endpoint that resolves to an internal address no TracePolicy grants is
// refused at every connection, whatever it resolved to when last checked.
func Open(ctx context.Context, rd client.Reader, rs *v1alpha1.ReportStore, newStore func(objectstore.Config) (objectstore.Store, error), g *grants.Resolver) (objectstore.Store, error) {
	cfg, err := Config(ctx, rd, rs)
	if err != nil {
		return nil, err
	}
	if g != nil {
		guard, err := g.Guard(ctx, rs.Namespace)
		if err != nil {
			return nil, err
		}
		cfg.DialContext = guard.DialContext
	}
	if newStore == nil {
		newStore = objectstore.New
	}
	return newStore(cfg)
}
