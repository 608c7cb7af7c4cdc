package storage

import (
	"context"
	"errors"
	"fmt"
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
	uploadCutoff := s.Now().Add(-opt.UploadMaxAge).UnixNano()
	if err := s.collectUploads(ctx, uploadCutoff, opt.DryRun, &rep); err != nil {
		return rep, err
	}
	if err := s.collectOrphans(ctx, cutoff, uploadCutoff, opt.DryRun, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// collectBlob removes blob d if nothing holds it and it was last touched before cutoff.
func (s *Store) collectBlob(ctx context.Context, d digest.Digest, cutoff int64, dryRun bool) (int64, bool, error) {
	var size int64
	var rec blobRecord
	marked, derived := false, false
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		marked = false // Update may run this more than once
		r, found, err := getBlobRecord(tx, d)
		if err != nil || !found {
			return err
		}
		if r.Refs > 0 || r.Touched >= cutoff {
			return nil
		}
		size, marked, rec = r.Size, true, r
		_, err = tx.Get(keyDerived(d))
		derived = err == nil
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if dryRun {
			return nil
		}
		r.Deleting = true
		return putJSON(tx, keyBlob(d), r)
	})
	if err != nil || !marked || dryRun {
		return size, marked, err
	}
	// Only bytes that were stored count as freed: an object already gone frees nothing. A
	// derived blob has no bytes of its own.
	locs := s.locations(rec, d)
	freed := int64(0)
	if !derived {
		for _, l := range locs {
			b, ok := s.stores[l.Store]
			if !ok {
				return 0, false, fmt.Errorf("gc: blob %s is in store %q, which is not configured", d, l.Store)
			}
			gone, err := b.Remove(ctx, l.Key)
			if err != nil {
				return 0, false, fmt.Errorf("gc: remove blob %s from %s: %w", d, l.Store, err)
			}
			if gone {
				freed += size
			}
		}
	}
	size = freed
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
		if rec.Key != "" {
			for _, l := range locs {
				if err := tx.Delete(keyStoreKey(l.Store, l.Key)); err != nil {
					return err
				}
			}
		}
		return tx.Delete(keyBlob(d))
	})
	if err != nil {
		return 0, false, fmt.Errorf("gc: forget blob %s: %w", d, err)
	}
	return size, true, nil
}

// collectOrphans walks every blob store and removes what nobody owns: committed objects no
// record names (left by a crash between a commit and its record) once older than cutoff,
// and upload staging of sessions that no longer exist once older than uploadCutoff.
func (s *Store) collectOrphans(ctx context.Context, cutoff, uploadCutoff int64, dryRun bool, rep *GCReport) error {
	for _, name := range s.names {
		b := s.stores[name]
		stale := map[string]bool{}
		err := b.Walk(ctx, func(e Entry) error {
			if e.Key == "" {
				if e.Upload != "" && e.Modified.UnixNano() < uploadCutoff {
					stale[e.Upload] = true
				}
				return nil
			}
			if e.Modified.UnixNano() >= cutoff {
				return nil
			}
			return s.collectOrphanObject(ctx, name, b, e, dryRun, rep)
		})
		if err != nil {
			return fmt.Errorf("gc: walk store %s: %w", name, err)
		}
		for id := range stale {
			var open bool
			if err := s.meta.View(ctx, func(tx meta.Tx) error {
				_, err := tx.Get(keyUpload(id))
				open = err == nil
				if errors.Is(err, meta.ErrNotFound) {
					err = nil
				}
				return err
			}); err != nil || open {
				continue
			}
			rep.OrphanFiles++
			if !dryRun {
				if err := b.DropUpload(ctx, id); err != nil {
					s.Log.Warn("gc: remove orphan upload data", "store", name, "upload", id, "err", err)
				}
			}
		}
	}
	return nil
}

// collectOrphanObject removes the committed object e of store b unless a record names it
// or the session that wrote it is still open. Most objects are someone's: a read-only
// check clears them before any write transaction.
func (s *Store) collectOrphanObject(ctx context.Context, name string, b BlobStore, e Entry, dryRun bool, rep *GCReport) error {
	var owned bool
	if err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		owned, err = objectOwned(tx, name, e)
		return err
	}); err != nil || owned {
		return err
	}
	var orphan bool
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		orphan = false // Update may run this more than once
		if owned, err := objectOwned(tx, name, e); err != nil || owned {
			return err
		}
		orphan = true
		if dryRun || e.Digest == "" {
			return nil
		}
		// A content-addressed key may be committed anew at any moment: hold the digest
		// while the object goes, as collectBlob does.
		return putJSON(tx, keyBlob(e.Digest), blobRecord{Deleting: true})
	})
	if err != nil || !orphan {
		return err
	}
	rep.OrphanFiles++
	if dryRun {
		return nil
	}
	if _, err := b.Remove(ctx, e.Key); err != nil {
		return err
	}
	if e.Digest == "" {
		return nil
	}
	return s.meta.Update(ctx, func(tx meta.Tx) error { return tx.Delete(keyBlob(e.Digest)) })
}

// objectOwned reports whether a record names object e of store name, or the session that
// writes it is open.
func objectOwned(tx meta.Tx, name string, e Entry) (bool, error) {
	if _, err := tx.Get(keyStoreKey(name, e.Key)); !errors.Is(err, meta.ErrNotFound) {
		return err == nil, err
	}
	if e.Upload != "" {
		if _, err := tx.Get(keyUpload(e.Upload)); !errors.Is(err, meta.ErrNotFound) {
			return err == nil, err
		}
	}
	if e.Digest != "" {
		_, found, err := getBlobRecord(tx, e.Digest)
		return found, err
	}
	return false, nil
}

// collectUploads removes sessions untouched since cutoff, with their data.
func (s *Store) collectUploads(ctx context.Context, cutoff int64, dryRun bool, rep *GCReport) error {
	var ids []string
	if err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		ids, err = tx.SetRange(setUploads, "", 0)
		return err
	}); err != nil {
		return fmt.Errorf("gc: list uploads: %w", err)
	}
	for _, id := range ids {
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
	return nil
}
