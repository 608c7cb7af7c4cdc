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

// RunPrefetch fetches what Cache.Queue asks for into the cache, each image once it has
// been queued for PrefetchDelay, and again every prefetchRetry for what failed, until ctx
// ends.
func (s *Store) RunPrefetch(ctx context.Context, log *slog.Logger) {
	if s.Cache == nil {
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := s.prefetchDue(ctx, log)
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-s.Cache.kick:
		case <-timer.C:
		}
	}
}

// prefetchDue fetches the queued images that are due and returns how long until the next
// one is (or the retry interval).
func (s *Store) prefetchDue(ctx context.Context, log *slog.Logger) time.Duration {
	next := prefetchRetry
	qs, err := s.Cache.Queued()
	if err != nil {
		log.Warn("prefetch: read queue", "err", err)
	}
	for _, q := range qs {
		if ctx.Err() != nil {
			return next
		}
		if wait := q.Queued.Add(s.PrefetchDelay).Sub(s.Cache.Now()); wait > 0 {
			next = min(next, wait)
			continue
		}
		err := s.Prefetch(ctx, q.Image, q.Digest)
		if err != nil && !errors.Is(err, ErrBlobUnknown) && !errors.Is(err, errNotCacheable) {
			log.Warn("prefetch failed; retried later", "image", q.Image, "digest", q.Digest, "err", err)
			continue
		}
		if err != nil {
			log.Info("prefetch: nothing to cache, dropped from the queue", "image", q.Image, "digest", q.Digest, "err", err)
		}
		if _, err := s.Cache.Dequeue(q.Image); err != nil {
			log.Warn("prefetch: dequeue", "image", q.Image, "err", err)
		}
	}
	return next
}

// errNotCacheable: the blob is in a local store, which the cache does not copy.
var errNotCacheable = errors.New("blob is in a local store; not cached")

// Prefetch reads blob d (image's disk) through the cache so that it is cached afterwards.
// Like every read it asks the blob record first: a deleted or collected blob is
// ErrBlobUnknown and is not fetched.
func (s *Store) Prefetch(ctx context.Context, image string, d digest.Digest) error {
	if s.Cache == nil {
		return errors.New("no cache configured")
	}
	f, _, err := s.openStored(fillOnly(WithCacheImage(ctx, image)), d)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, isFile := f.(*os.File); isFile && !s.Cache.Has(d) {
		return fmt.Errorf("prefetch %s: %w", d, errNotCacheable)
	}
	if _, isFile := f.(*os.File); !isFile {
		if _, err := io.Copy(io.Discard, f); err != nil {
			return fmt.Errorf("prefetch %s: %w", d, err)
		}
	}
	s.Cache.Flush()
	if !s.Cache.Has(d) {
		return fmt.Errorf("prefetch %s: not cached (a local store, or another read is filling it)", d)
	}
	return nil
}
