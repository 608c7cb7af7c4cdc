package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// linked reports whether d is linked into repo and not being collected.
func linked(tx meta.Tx, repo string, d digest.Digest) (bool, error) {
	_, ok, err := linkedRecord(tx, repo, d)
	return ok, err
}

// linkedRecord is linked that also returns the blob's record (decoded once).
func linkedRecord(tx meta.Tx, repo string, d digest.Digest) (blobRecord, bool, error) {
	ok, err := tx.SetHas(keyRepoBlobs(repo), d.String())
	if err != nil || !ok {
		return blobRecord{}, false, err
	}
	r, found, err := getBlobRecord(tx, d)
	if err != nil {
		return blobRecord{}, false, err
	}
	return r, found && !r.Deleting, nil
}

// StatBlob returns the size of blob d as seen through repo, or ErrBlobUnknown. The record
// answers; the blob store is not asked.
func (s *Store) StatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var ok bool
	var r blobRecord
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		r, ok, err = linkedRecord(tx, repo, d)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("stat blob %s in %s: %w", d, repo, err)
	}
	if !ok || r.Deleting {
		// A blob GC is removing is gone for the asker: a push re-uploads it.
		return 0, ErrBlobUnknown
	}
	return r.Size, nil
}

// LeaseBlob holds blob d of repo, when nothing references it, for another grace period: a
// HEAD of such a blob is most likely a push that found it present and is about to name it in
// a manifest. Only a blob past half its grace is written, so most HEADs stay reads.
func (s *Store) LeaseBlob(ctx context.Context, repo string, d digest.Digest) error {
	var r blobRecord
	var found bool
	if err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		r, found, err = getBlobRecord(tx, d)
		return err
	}); err != nil || !found || r.Refs > 0 || s.Now().UnixNano()-r.Touched <= int64(s.grace()/2) {
		return err
	}
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		r, found, err := getBlobRecord(tx, d)
		if err != nil || !found || r.Deleting || r.Refs > 0 {
			return err
		}
		r.Touched = s.Now().UnixNano()
		if err := s.enqueueReview(tx, d); err != nil {
			return err
		}
		return putJSON(tx, keyBlob(d), r)
	})
}

// OpenBlob opens blob d as seen through repo. The caller closes it.
// The link, the record and whether the blob is derived are read in one transaction: a
// signed URL's range reads open the blob once per request.
func (s *Store) OpenBlob(ctx context.Context, repo string, d digest.Digest) (ReadSeekCloser, int64, error) {
	var r blobRecord
	var ok, derived bool
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		if r, ok, err = linkedRecord(tx, repo, d); err != nil || !ok {
			return err
		}
		derived, err = isDerived(tx, d)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s in %s: %w", d, repo, err)
	}
	if !ok {
		return nil, 0, ErrBlobUnknown
	}
	return s.openRecord(ctx, d, r, derived)
}

// BlobRepositories lists the repositories blob d is linked into (for a mount without
// `from`, which the caller filters by what the requester may read).
func (s *Store) BlobRepositories(ctx context.Context, d digest.Digest) ([]string, error) {
	var repos []string
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		repos, err = tx.SetRange(keyBlobLinks(d), "", 0)
		return err
	})
	return repos, err
}

// MountBlob links blob d, already linked into from, into to. It reports ErrBlobUnknown when
// from does not hold d.
func (s *Store) MountBlob(ctx context.Context, from, to string, d digest.Digest) error {
	size, err := s.StatBlob(ctx, from, d)
	if err != nil {
		return err
	}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		ok, err := linked(tx, from, d)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBlobUnknown
		}
		return s.linkBlob(tx, to, d, size)
	})
	if errors.Is(err, errBlobBusy) {
		return ErrBlobUnknown
	}
	return err
}

// DeleteBlob unlinks d from repo at once; the bytes go when GC finds nothing holding them.
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		ok, err := tx.SetHas(keyRepoBlobs(repo), d.String())
		if err != nil {
			return err
		}
		if !ok {
			return ErrBlobUnknown
		}
		if err := tx.SetRemove(keyRepoBlobs(repo), d.String()); err != nil {
			return err
		}
		if err := tx.SetRemove(keyBlobLinks(d), repo); err != nil {
			return err
		}
		return dropRepoIfEmpty(tx, repo)
	})
}
