package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xloud/xloud-image/auth/keymanager"
	"github.com/xloud/xloud-image/internal/metrics"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// Many nodes over one metadata store: what each node does alone (answer requests, watch its
// store's health) and what one node at a time does for all (the chores below, each under a
// lock in the metadata store that lapses when its holder dies).

// clusterConfig is the background GC and key rotation.
type clusterConfig struct {
	GCInterval       time.Duration // 0: no background GC
	GCGrace          time.Duration
	TokenKeyRotation time.Duration
}

func clusterFlags(fs *flag.FlagSet, c *clusterConfig) {
	fs.DurationVar(&c.GCInterval, "gc-interval", 10*time.Minute, "how often one node (whichever holds the GC lock) reviews the blobs that lost their last reference; 0: only the gc command")
	fs.DurationVar(&c.GCGrace, "gc-grace", time.Hour, "how long a blob nothing references waits before GC removes it: longer than any push takes between a blob and its manifest")
	fs.DurationVar(&c.TokenKeyRotation, "token-key-rotation", 24*time.Hour, "how long one key signs registry bearer tokens before every node switches to a new one (old keys verify until their tokens expire)")
}

// chore runs fn every interval on whichever node holds lock name; a holder renews the lock
// each round, so one node keeps the work until it stops.
func chore(ctx context.Context, m meta.Store, node, name string, every time.Duration, fn func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			meta.Unlock(context.WithoutCancel(ctx), m, name, node)
			return
		case <-t.C:
		}
		// The lock outlives two rounds, so a slow round does not hand the work over.
		meta.Once(ctx, m, name, node, 3*every, slog.Default(), fn)
	}
}

// gcFullEvery is how many background rounds pass between full passes, which walk every blob
// and the stores for what the queue cannot know: blobs from before the queue, orphan objects,
// and upload sessions left idle.
const gcFullEvery = 12

// gcRunLock is held by whichever process is collecting right now (a background round, or
// `xloud-image gc` through any node): two collectors never work at once, since one could
// forget a record another's re-push just made.
const gcRunLock = "gc-run"

// gcRunTTL bounds how long a collector that died keeps others out.
const gcRunTTL = time.Hour

// errGCBusy means another process is collecting; the admin socket answers it 409.
var errGCBusy = errors.New("a garbage collection is running")

// collectExclusive runs fn while holding the cluster's collection lock as node.
func collectExclusive(ctx context.Context, store *storage.Store, node string, fn func(context.Context) (storage.GCReport, error)) (storage.GCReport, error) {
	ok, err := meta.TryLock(ctx, store.Meta(), gcRunLock, node, gcRunTTL, time.Now())
	if err != nil {
		return storage.GCReport{}, err
	}
	if !ok {
		holder, _ := meta.LockHolder(ctx, store.Meta(), gcRunLock, time.Now())
		return storage.GCReport{}, fmt.Errorf("%w on node %s; retry when it ends", errGCBusy, holder)
	}
	defer meta.Unlock(context.WithoutCancel(ctx), store.Meta(), gcRunLock, node)
	return fn(ctx)
}

// backgroundGC is one node's share of the automatic GC: each round reviews the queue; every
// gcFullEvery-th round also runs a full pass.
func backgroundGC(store *storage.Store, node string, c clusterConfig, uploadMaxAge time.Duration, m *metrics.Registry) func(context.Context) {
	round := 0
	return func(ctx context.Context) {
		round++
		rep, err := collectExclusive(ctx, store, node, func(ctx context.Context) (storage.GCReport, error) {
			rep, err := store.ReviewGarbage(ctx, false)
			if err == nil && round%gcFullEvery == 0 {
				var full storage.GCReport
				full, err = store.CollectGarbage(ctx, storage.GCOptions{Grace: c.GCGrace, UploadMaxAge: max(uploadMaxAge, c.GCGrace)})
				rep.Blobs, rep.BytesFreed = append(rep.Blobs, full.Blobs...), rep.BytesFreed+full.BytesFreed
				rep.Uploads, rep.OrphanFiles = full.Uploads, full.OrphanFiles
			}
			return rep, err
		})
		if errors.Is(err, errGCBusy) {
			return // an operator's run; the next round reviews what is left
		}
		if err != nil {
			if ctx.Err() == nil {
				slog.Warn("background garbage collection", "err", err)
			}
			return
		}
		m.GCRun(rep.BytesFreed)
		if len(rep.Blobs) > 0 || len(rep.Uploads) > 0 || rep.OrphanFiles > 0 {
			slog.Info("garbage collected", "blobs", len(rep.Blobs), "bytes_freed", rep.BytesFreed,
				"uploads", len(rep.Uploads), "orphan_files", rep.OrphanFiles, "reviewed", rep.BlobsChecked)
		}
	}
}

// readiness watches the metadata store: while it does not answer, every request is answered
// 503 in its door's format, and /readyz fails; it recovers by itself when the store answers
// again.
type readiness struct {
	store *storage.Store
	err   atomic.Pointer[error] // the metadata store's last answer; nil: it answered
}

const readinessEvery = 500 * time.Millisecond

func (r *readiness) run(ctx context.Context) {
	t := time.NewTicker(readinessEvery)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r.check(pctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check pings the metadata store now and remembers the answer (so a /readyz that succeeds
// opens the doors at once, without waiting for the watcher's next round). A blob store that
// does not answer is not a reason to close the doors: reads of metadata still work, and
// writes to it answer 503 on their own.
func (r *readiness) check(ctx context.Context) error {
	err := r.store.Meta().Ping(ctx)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return err // the caller left; that says nothing about the store
	}
	var prev *error
	if err != nil {
		prev = r.err.Swap(&err)
	} else {
		prev = r.err.Swap(nil)
	}
	switch {
	case err != nil && prev == nil:
		slog.Error("metadata store unavailable: answering 503", "err", err)
	case err == nil && prev != nil:
		slog.Info("metadata store answers again")
	}
	return err
}

// Ready is the last answer of the watcher, as meta.ErrUnavailable.
func (r *readiness) Ready(context.Context) error {
	p := r.err.Load()
	switch {
	case p == nil:
		return nil
	case errors.Is(*p, meta.ErrUnavailable):
		return *p
	}
	return fmt.Errorf("%w: %w", meta.ErrUnavailable, *p)
}

// unavailableElsewhere answers 503 on the paths of a port that neither door serves (the
// identity API and the key manager in Keystone's and Barbican's error shape, the registry's
// token endpoint in the OCI one) while the metadata store does not answer.
func unavailableElsewhere(rd *readiness, h http.Handler) http.Handler {
	const (
		openstack = `{"error":{"code":503,"title":"Service Unavailable","message":"The metadata store does not answer; retry later."}}` + "\n"
		oci       = `{"errors":[{"code":"UNAVAILABLE","message":"the metadata store does not answer; retry later"}]}` + "\n"
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := ""
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, "/identity/"), p == keymanager.Prefix, strings.HasPrefix(p, keymanager.Prefix+"/"):
			body = openstack
		case p == "/token":
			body = oci
		}
		if body != "" && rd.Ready(r.Context()) != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(body))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// countUploads keeps the node's upload-requests gauge.
func countUploads(m *metrics.Registry, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/uploads/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
			defer m.Uploading()()
		}
		h.ServeHTTP(w, r)
	})
}

// startChores starts the work one node at a time does for the cluster: expiring idle upload
// sessions, purging expired tokens and lockouts, and the background GC.
func startChores(ctx context.Context, c config, store *storage.Store, node string, sec *security, m *metrics.Registry) {
	// The id names this process in the locks and leases other nodes see.
	slog.Info("node", "node", node)
	if age := c.Limits.UploadExpiry; age > 0 {
		go chore(ctx, store.Meta(), node, "upload-janitor", min(max(age/10, time.Second), time.Minute), func(ctx context.Context) {
			ids, err := store.ExpireUploads(ctx, age)
			if err != nil && ctx.Err() == nil {
				slog.Warn("expiring upload sessions", "err", err)
			}
			if len(ids) > 0 {
				slog.Info("expired idle upload sessions", "count", len(ids))
			}
		})
	}
	if sec != nil {
		go chore(ctx, store.Meta(), node, "security-sweep", purgeTokensEvery, sec.purge)
	}
	if c.Cluster.GCInterval > 0 {
		go chore(ctx, store.Meta(), node, "gc", c.Cluster.GCInterval, backgroundGC(store, node, c.Cluster, c.Limits.UploadExpiry, m))
	}
}
