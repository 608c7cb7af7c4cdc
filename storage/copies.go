package storage

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"slices"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// Copies of one blob in several named stores (Glance's multi-store). A blob record names
// its first location (Store, Key) and further whole copies (Copies); a blob is stored once
// per store whatever number of repositories or images hold it, so which stores must keep a
// copy is the caller's decision (the catalog's, which knows the images), not a count here.

// ErrStoreUnknown means a store name is not one of the configured stores.
var ErrStoreUnknown = errors.New("no such blob store")

// ErrLastCopy means the copy asked to go is the only one of the blob.
var ErrLastCopy = errors.New("the only copy of the blob")

// locations lists where r's bytes are, the first location first.
func (s *Store) locations(r blobRecord, d digest.Digest) []Location {
	name, key := s.location(r, d)
	return append([]Location{{name, key}}, r.Copies...)
}

// BlobStores names the stores holding a whole copy of blob d, in the order reads try them;
// a blob without a record is ErrBlobUnknown.
func (s *Store) BlobStores(ctx context.Context, d digest.Digest) ([]string, error) {
	var r blobRecord
	var found bool
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		r, found, err = getBlobRecord(tx, d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blob stores of %s: %w", d, err)
	}
	if !found || r.Deleting {
		return nil, ErrBlobUnknown
	}
	var out []string
	for _, l := range s.locations(r, d) {
		out = append(out, l.Store)
	}
	return out, nil
}

// CopyBlob copies blob d into the store named to, streaming from the first store that
// answers into to's upload writer: no temporary copy, and the digest is checked on the way
// so a corrupt source never becomes a copy. A blob already in to is left as it is.
func (s *Store) CopyBlob(ctx context.Context, d digest.Digest, to string) error {
	b, ok := s.stores[to]
	if !ok {
		return fmt.Errorf("copy blob %s to %q: %w", d, to, ErrStoreUnknown)
	}
	have, err := s.BlobStores(ctx, d)
	if err != nil {
		return err
	}
	if slices.Contains(have, to) {
		return nil
	}
	src, size, err := s.openStored(ctx, d)
	if err != nil {
		return fmt.Errorf("copy blob %s: open source: %w", d, err)
	}
	defer src.Close()
	var h hash.Hash
	switch d.Algorithm() {
	case digest.SHA512:
		h = sha512.New()
	default:
		h = sha256.New()
	}
	w, err := b.NewUpload(ctx, uuid.NewString())
	if err != nil {
		return fmt.Errorf("copy blob %s to %s: %w", d, to, err)
	}
	n, err := w.Append(ctx, src, size, true, h)
	if err == nil && (n != size || digest.NewDigest(d.Algorithm(), h) != d) {
		err = fmt.Errorf("%w: %d bytes read of %d", ErrDigestMismatch, n, size)
	}
	if err != nil {
		s.abort(ctx, w, d)
		return fmt.Errorf("copy blob %s to %s: %w", d, to, err)
	}
	return s.commitBlob(ctx, to, w, d, size)
}

// RemoveBlobCopy removes the copy of blob d held by the store named from, refusing
// (ErrLastCopy) when it is the only one: a blob that no longer needs to be anywhere is
// garbage collection's to take. It reports whether that store held a copy.
func (s *Store) RemoveBlobCopy(ctx context.Context, d digest.Digest, from string) (bool, error) {
	return s.RemoveBlobCopyUnless(ctx, d, from, nil)
}

// RemoveBlobCopyUnless is RemoveBlobCopy unless keep, run in the same transaction as the
// removal (so it sees the records that say who needs the copy as they are when the copy
// goes), reports that the copy is still needed.
func (s *Store) RemoveBlobCopyUnless(ctx context.Context, d digest.Digest, from string, keep func(tx meta.Tx) (bool, error)) (bool, error) {
	if _, ok := s.stores[from]; !ok {
		return false, fmt.Errorf("remove blob %s from %q: %w", d, from, ErrStoreUnknown)
	}
	var gone Location
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		gone = Location{} // Update may run this more than once
		r, found, err := getBlobRecord(tx, d)
		if err != nil {
			return err
		}
		if !found || r.Deleting {
			return ErrBlobUnknown
		}
		locs := s.locations(r, d)
		i := slices.IndexFunc(locs, func(l Location) bool { return l.Store == from })
		if i < 0 {
			return nil
		}
		if len(locs) == 1 {
			return ErrLastCopy
		}
		if keep != nil {
			if needed, err := keep(tx); err != nil || needed {
				return err
			}
		}
		gone = locs[i]
		locs = slices.Delete(locs, i, i+1)
		r.Store, r.Key, r.Copies = locs[0].Store, locs[0].Key, locs[1:]
		if len(r.Copies) == 0 {
			r.Copies = nil
		}
		// The first location may have been implicit (a record older than keys): it is named
		// now, so GC's ownership check finds it.
		if err := tx.Put(keyStoreKey(r.Store, r.Key), []byte(d.String())); err != nil {
			return err
		}
		if err := tx.Delete(keyStoreKey(gone.Store, gone.Key)); err != nil {
			return err
		}
		return putJSON(tx, keyBlob(d), r)
	})
	if err != nil || gone.Store == "" {
		return false, err
	}
	if _, err := s.stores[from].Remove(ctx, gone.Key); err != nil {
		// No record names the object any more: GC's walk of the store takes it.
		s.Log.Warn("remove a blob copy; gc takes it", "digest", d, "store", from, "key", gone.Key, "err", err)
	}
	return true, nil
}

// HasCopy reports, within tx, whether the store named store holds a copy of blob d.
func (s *Store) HasCopy(tx meta.Tx, d digest.Digest, store string) (bool, error) {
	r, found, err := getBlobRecord(tx, d)
	if err != nil || !found || r.Deleting {
		return false, err
	}
	return slices.ContainsFunc(s.locations(r, d), func(l Location) bool { return l.Store == store }), nil
}
