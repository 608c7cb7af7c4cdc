package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// errSessionLive means a session was touched after the caller decided to expire it.
var errSessionLive = errors.New("upload session is in use")

// ExpireUploads removes every upload session untouched for maxAge, its data with it; a
// client resuming it gets ErrUploadUnknown. It returns the ids removed.
func (s *Store) ExpireUploads(ctx context.Context, maxAge time.Duration) ([]string, error) {
	var ids []string
	if err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		ids, err = tx.SetRange(setUploads, "", 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("expire uploads: list: %w", err)
	}
	cutoff := s.Now().Add(-maxAge).Unix()
	var removed []string
	for _, id := range ids {
		ok, err := s.expireUpload(ctx, id, cutoff)
		if err != nil {
			return removed, err
		}
		if ok {
			removed = append(removed, id)
		}
	}
	return removed, nil
}

// expireUpload removes session id if it was last touched before cutoff (Unix seconds). The
// age is checked again in the removing transaction, so a chunk that lands meanwhile, on
// any node, keeps the session.
func (s *Store) expireUpload(ctx context.Context, id string, cutoff int64) (bool, error) {
	unlock := s.uploadLocks.Lock(id)
	defer unlock()
	err := s.removeSession(ctx, id, func(u Upload) bool { return u.Updated < cutoff })
	if errors.Is(err, errSessionLive) {
		return false, nil
	}
	return err == nil, err
}

// RunUploadJanitor expires idle upload sessions (ExpireUploads) every so often until ctx
// ends. Every server of a shared store may run it: removals are transactional.
func (s *Store) RunUploadJanitor(ctx context.Context, maxAge time.Duration, log *slog.Logger) {
	every := min(max(maxAge/10, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids, err := s.ExpireUploads(ctx, maxAge)
		if err != nil && ctx.Err() == nil {
			log.Warn("expiring upload sessions", "err", err)
		}
		if len(ids) > 0 {
			log.Info("expired idle upload sessions", "count", len(ids))
		}
	}
}
