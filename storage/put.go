package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/google/uuid"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// PutOptions says how PutBlob takes a blob in.
type PutOptions struct {
	// Max is the most bytes taken (< 0: no limit); more is ErrTooLarge.
	Max int64
	// Check, if not nil, runs once the bytes are in and before anything is committed: its
	// error refuses the blob.
	Check func(size int64) error
	// Hash, if not nil, is a fresh SHA-256 of the bytes that the digest is taken from: one
	// that computes more in the same pass (sha256twin). PutBlob makes its own otherwise.
	Hash hash.Hash
	// Sinks see the bytes as they are written (other hashes, a format inspector).
	Sinks []io.Writer
	// Store names the blob store the bytes go to ("": the default store). A blob already
	// stored elsewhere gains a copy there.
	Store string
}

// PutBlob streams r into a new blob linked into repo, in one pass: the sha256 digest and
// every sink see the bytes as they are written. Nothing is visible until the blob is
// committed; on error nothing is left behind. It returns the digest and size.
func (s *Store) PutBlob(ctx context.Context, repo string, r io.Reader, opt PutOptions) (digest.Digest, int64, error) {
	name := opt.Store
	if name == "" {
		name = s.def
	}
	b, ok := s.stores[name]
	if !ok {
		return "", 0, fmt.Errorf("put blob: %q: %w", name, ErrStoreUnknown)
	}
	w, err := b.NewUpload(ctx, uuid.NewString())
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	h := opt.Hash
	if h == nil {
		h = sha256.New()
	}
	n, err := w.Append(ctx, r, opt.Max, true, append([]io.Writer{h}, opt.Sinks...)...)
	if err != nil {
		s.abort(ctx, w, "")
		return "", n, fmt.Errorf("put blob: %w", err)
	}
	if opt.Check != nil {
		if err := opt.Check(n); err != nil {
			s.abort(ctx, w, "")
			return "", n, err
		}
	}
	d := digest.NewDigest(digest.SHA256, h)
	if err := s.commitBlob(ctx, name, w, d, n); err != nil {
		return "", n, err
	}
	err = s.meta.Update(ctx, func(tx meta.Tx) error { return s.linkBlob(tx, repo, d, n) })
	if errors.Is(err, errBlobBusy) {
		return "", n, ErrCollected
	}
	return d, n, err
}
