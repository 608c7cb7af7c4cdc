package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
)

// prefetchRetry is how often the prefetch worker retries what it could not cache (a
// blob another reader was filling, an unreachable store).
const prefetchRetry = 30 * time.Second

// RunPrefetch fetches what Cache.Queue asks for into the cache, at once (Glance's cache
// worker) and again every prefetchRetry for what failed, until ctx ends.
func (s *Store) RunPrefetch(ctx context.Context, log *slog.Logger) {
	if s.Cache == nil {
		return
	}
	t := time.NewTicker(prefetchRetry)
	defer t.Stop()
	for {
		qs, err := s.Cache.Queued()
		if err != nil {
			log.Warn("prefetch: read queue", "err", err)
		}
		for _, q := range qs {
			if ctx.Err() != nil {
				return
			}
			err := s.Prefetch(ctx, q.Image, q.Digest)
			if err != nil && !errors.Is(err, ErrBlobUnknown) {
				log.Warn("prefetch failed; retried later", "image", q.Image, "digest", q.Digest, "err", err)
				continue
			}
			if err != nil {
				log.Info("prefetch: blob gone, dropped from the queue", "image", q.Image, "digest", q.Digest)
			}
			if _, err := s.Cache.Dequeue(q.Image); err != nil {
				log.Warn("prefetch: dequeue", "image", q.Image, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.Cache.kick:
		case <-t.C:
		}
	}
}

// Prefetch reads blob d (image's disk) through the cache so that it is cached afterwards.
// Like every read it asks the blob record first: a deleted or collected blob is
// ErrBlobUnknown and is not fetched.
func (s *Store) Prefetch(ctx context.Context, image string, d digest.Digest) error {
	if s.Cache == nil {
		return errors.New("no cache configured")
	}
	f, _, err := s.openStored(WithCacheImage(ctx, image), d)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, cached := f.(*os.File); !cached {
		if _, err := io.Copy(io.Discard, f); err != nil {
			return fmt.Errorf("prefetch %s: %w", d, err)
		}
	}
	if !s.Cache.Has(d) {
		return fmt.Errorf("prefetch %s: not cached (a local store, or another read is filling it)", d)
	}
	return nil
}
