package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// GCOptions tunes a garbage collection pass.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Grace spares blobs committed, linked or mounted this recently, so a blob pushed just
	// before its manifest is never taken.
	Grace time.Duration
	// UploadMaxAge is how long an upload session may sit untouched before it is removed.
	UploadMaxAge time.Duration
}

// GCReport says what a pass removed (or, in a dry run, would remove).
type GCReport struct {
	Blobs        []digest.Digest `json:"blobs"`
	BytesFreed   int64           `json:"bytes_freed"`          // bytes of blob files removed; 0 in a dry run
	WouldFree    int64           `json:"would_free,omitempty"` // in a dry run, bytes a pass would remove
	Uploads      []string        `json:"uploads"`
	OrphanFiles  int             `json:"orphan_files"`
	BlobsChecked int             `json:"blobs_checked"`
	DryRun       bool            `json:"dry_run"`
}

// CollectGarbage removes blobs that no manifest holds and stale upload sessions. It is safe
// while the server takes pushes: a blob is first marked in the metadata store (only if it is
// still unreferenced and untouched for the grace period), which stops anyone linking it, then
// its file is removed, then its record; a commit racing with it waits for the mark to go and
// writes the file anew. The grace period must exceed the longest time between a blob's
// commit and the push of the manifest that names it; a shorter one costs clients a re-push
// (ErrCollected), never a manifest with a missing blob.
func (s *Store) CollectGarbage(ctx context.Context, opt GCOptions) (GCReport, error) {
	rep := GCReport{DryRun: opt.DryRun, Blobs: []digest.Digest{}, Uploads: []string{}}
	cutoff := s.Now().Add(-opt.Grace).UnixNano()
	var all []string
	if err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		all, err = tx.SetRange(setBlobs, "", 0)
		return err
	}); err != nil {
		return rep, fmt.Errorf("gc: list blobs: %w", err)
	}
	for _, ds := range all {
		d := digest.Digest(ds)
		rep.BlobsChecked++
		size, removed, err := s.collectBlob(ctx, d, cutoff, opt.DryRun)
		if err != nil {
			return rep, err
		}
		if !removed {
			continue
		}
		rep.Blobs = append(rep.Blobs, d)
		if opt.DryRun {
			rep.WouldFree += size
		} else {
			rep.BytesFreed += size
		}
	}
	if err := s.collectOrphanFiles(ctx, cutoff, opt.DryRun, &rep); err != nil {
		return rep, err
	}
	if err := s.collectUploads(ctx, s.Now().Add(-opt.UploadMaxAge).UnixNano(), opt.DryRun, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// collectBlob removes blob d if nothing holds it and it was last touched before cutoff.
func (s *Store) collectBlob(ctx context.Context, d digest.Digest, cutoff int64, dryRun bool) (int64, bool, error) {
	var size int64
	marked := false
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		marked = false // Update may run this more than once
		r, found, err := getBlobRecord(tx, d)
		if err != nil || !found {
			return err
		}
		if r.Refs > 0 || r.Touched >= cutoff {
			return nil
		}
		size, marked = r.Size, true
		if dryRun {
			return nil
		}
		r.Deleting = true
		return putJSON(tx, keyBlob(d), r)
	})
	if err != nil || !marked || dryRun {
		return size, marked, err
	}
	// Only bytes that were on disk count as freed: a file already gone frees nothing.
	gone, err := s.files.removeBlob(d)
	if err != nil {
		return 0, false, err
	}
	if !gone {
		size = 0
	}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		repos, err := tx.SetRange(keyBlobLinks(d), "", 0)
		if err != nil {
			return err
		}
		for _, repo := range repos {
			if err := tx.SetRemove(keyRepoBlobs(repo), d.String()); err != nil {
				return err
			}
			if err := tx.SetRemove(keyBlobLinks(d), repo); err != nil {
				return err
			}
			if err := dropRepoIfEmpty(tx, repo); err != nil {
				return err
			}
		}
		if err := tx.SetRemove(setBlobs, d.String()); err != nil {
			return err
		}
		if err := tx.Delete(keyDerived(d)); err != nil {
			return err
		}
		return tx.Delete(keyBlob(d))
	})
	if err != nil {
		return 0, false, fmt.Errorf("gc: forget blob %s: %w", d, err)
	}
	return size, true, nil
}

// collectOrphanFiles removes blob files that have no record (left by a crash between writing
// a file and recording it) once they are older than cutoff.
func (s *Store) collectOrphanFiles(ctx context.Context, cutoff int64, dryRun bool, rep *GCReport) error {
	return s.files.walkBlobs(func(d digest.Digest, info fs.FileInfo) error {
		if info.ModTime().UnixNano() >= cutoff {
			return nil
		}
		var orphan bool
		err := s.meta.Update(ctx, func(tx meta.Tx) error {
			orphan = false // Update may run this more than once
			_, found, err := getBlobRecord(tx, d)
			if err != nil || found {
				return err
			}
			orphan = true
			if dryRun {
				return nil
			}
			// Hold the digest while the file goes, as collectBlob does.
			return putJSON(tx, keyBlob(d), blobRecord{Deleting: true})
		})
		if err != nil || !orphan {
			return err
		}
		rep.OrphanFiles++
		if dryRun {
			return nil
		}
		if _, err := s.files.removeBlob(d); err != nil {
			return err
		}
		return s.meta.Update(ctx, func(tx meta.Tx) error { return tx.Delete(keyBlob(d)) })
	})
}

// collectUploads removes sessions untouched since cutoff, and upload files with no session.
func (s *Store) collectUploads(ctx context.Context, cutoff int64, dryRun bool, rep *GCReport) error {
	var ids []string
	if err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		ids, err = tx.SetRange(setUploads, "", 0)
		return err
	}); err != nil {
		return fmt.Errorf("gc: list uploads: %w", err)
	}
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
		var u Upload
		err := s.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyUpload(id), &u) })
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if u.Updated*int64(time.Second) >= cutoff {
			continue
		}
		rep.Uploads = append(rep.Uploads, id)
		if dryRun {
			continue
		}
		unlock := s.uploadLocks.Lock(id)
		err = s.cancelLocked(ctx, id)
		unlock()
		if err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.files.root, "uploads"))
	if err != nil {
		return fmt.Errorf("gc: list upload files: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || known[e.Name()] || info.ModTime().UnixNano() >= cutoff {
			continue
		}
		// A session started after we listed them would be newer than cutoff.
		rep.OrphanFiles++
		if !dryRun {
			if err := os.Remove(filepath.Join(s.files.root, "uploads", e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.Log.Warn("gc: remove orphan upload file", "file", e.Name(), "err", err)
			}
		}
	}
	return nil
}
