package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// Online GC without a scan. A blob enters the review queue when it is committed with no
// holder and when its last holding manifest goes; its entry is due one grace period later.
// ReviewGarbage takes due entries oldest first and removes a blob only if, by then, it is
// still held by nothing and untouched for the grace period (collectBlob's fenced removal);
// a blob touched since is left for the entry its touch queued. Entries are idempotent, so a
// node that dies mid-review leaves work the next reviewer redoes.

// setGCReview is the review queue (see layout.go).
const setGCReview = "gc:review"

// DefaultGCGrace is the grace period when GCGrace is not set: longer than any push takes
// between committing a blob and pushing the manifest that names it.
const DefaultGCGrace = time.Hour

func (s *Store) grace() time.Duration {
	if s.GCGrace > 0 {
		return s.GCGrace
	}
	return DefaultGCGrace
}

func reviewEntry(due int64, d digest.Digest) string { return fmt.Sprintf("%020d|%s", due, d) }

// enqueueReview queues d for review one grace period from now.
func (s *Store) enqueueReview(tx meta.Tx, d digest.Digest) error {
	return tx.SetAdd(setGCReview, reviewEntry(s.Now().Add(s.grace()).UnixNano(), d))
}

// GCQueueLength is how many review entries wait (due or not).
func (s *Store) GCQueueLength(ctx context.Context) (int64, error) {
	var n int64
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		n, err = tx.SetLen(setGCReview)
		return err
	})
	return n, err
}

// ReviewGarbage reviews the queue's due entries: each blob still unheld and untouched for
// the grace period is removed. In a dry run nothing is removed and the queue is kept.
func (s *Store) ReviewGarbage(ctx context.Context, dryRun bool) (GCReport, error) {
	rep := GCReport{DryRun: dryRun, Blobs: []digest.Digest{}, Uploads: []string{}}
	now := s.Now()
	cutoff := now.Add(-s.grace()).UnixNano()
	after := ""
	for {
		var batch []string
		if err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
			batch, err = tx.SetRange(setGCReview, after, 200)
			return err
		}); err != nil {
			return rep, fmt.Errorf("gc: read review queue: %w", err)
		}
		if len(batch) == 0 {
			return rep, nil
		}
		for _, e := range batch {
			after = e
			dueS, ds, ok := strings.Cut(e, "|")
			due, err := strconv.ParseInt(dueS, 10, 64)
			if ok && err == nil && due > now.UnixNano() {
				return rep, nil // the rest is later still
			}
			if d, err := digest.Parse(ds); ok && err == nil {
				rep.BlobsChecked++
				size, removed, err := s.collectBlob(ctx, d, cutoff, dryRun)
				if err != nil {
					return rep, err
				}
				if removed {
					rep.Blobs = append(rep.Blobs, d)
					if dryRun {
						rep.WouldFree += size
					} else {
						rep.BytesFreed += size
					}
				}
			}
			if dryRun {
				continue
			}
			if err := s.meta.Update(ctx, func(tx meta.Tx) error { return tx.SetRemove(setGCReview, e) }); err != nil {
				return rep, fmt.Errorf("gc: dequeue %s: %w", e, err)
			}
		}
	}
}
