package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/metrics"
	"github.com/xloud/xloud-image/storage"
)

// metricSources reads the domain gauges from the catalog and the store at each scrape.
func metricSources(cat *catalog.Catalog, store *storage.Store) metrics.Sources {
	return metrics.Sources{
		Images: func(ctx context.Context) (map[string]int, error) {
			counts, err := cat.CountByStatus(ctx)
			out := make(map[string]int, len(counts))
			for s, n := range counts {
				out[string(s)] = n
			}
			return out, err
		},
		Store: func(ctx context.Context) (int64, int64, error) {
			u, err := store.Usage(ctx)
			return u.BlobBytes, u.Uploads, err
		},
		GCQueue: store.GCQueueLength,
	}
}

// metricsEndpoint serves /metrics, to admins only with --metrics-auth.
func metricsEndpoint(c config, sec *security, m *metrics.Registry) (http.Handler, error) {
	if !c.MetricsAuth {
		return m.Handler(), nil
	}
	if sec == nil {
		return nil, fmt.Errorf("--metrics-auth needs --auth embedded or keystone: with --auth none there are no credentials to check")
	}
	h := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := sec.authenticator.FromRequest(r)
		switch {
		case err != nil || a.Principal.Anonymous:
			w.Header().Set("WWW-Authenticate", `Basic realm="xloud-image metrics"`)
			http.Error(w, "metrics need admin credentials", http.StatusUnauthorized)
		case !sec.policy.AllowMetrics(a.Principal):
			http.Error(w, "metrics need the admin role", http.StatusForbidden)
		default:
			h.ServeHTTP(w, r)
		}
	}), nil
}
