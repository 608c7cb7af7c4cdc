package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// PutBlob streams r into a new blob linked into repo, in one pass: the sha256 digest and
// every sink (other hashes, a format inspector) see the bytes as they are written. At most
// max bytes are taken (max < 0: no limit). check, if not nil, runs once the bytes are in
// and before anything is committed: its error refuses the blob. Nothing is visible until
// the blob is committed; on error nothing is left behind. It returns the digest and size.
func (s *Store) PutBlob(ctx context.Context, repo string, r io.Reader, max int64, check func(size int64) error, sinks ...io.Writer) (digest.Digest, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.files.root, "uploads"), "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once committed
	defer tmp.Close()
	h := sha256.New()
	n, err := ingest(tmp, 0, r, max, append([]io.Writer{h}, sinks...)...)
	if err != nil {
		return "", n, fmt.Errorf("put blob: %w", err)
	}
	if check != nil {
		if err := check(n); err != nil {
			return "", n, err
		}
	}
	if err := tmp.Sync(); err != nil {
		return "", n, fmt.Errorf("put blob: %w", err)
	}
	d := digest.NewDigest(digest.SHA256, h)
	if err := s.claimBlob(ctx, d, n); err != nil {
		return "", n, err
	}
	if err := s.files.commit(tmp.Name(), d); err != nil {
		return "", n, err
	}
	err = s.meta.Update(ctx, func(tx meta.Tx) error { return s.linkBlob(tx, repo, d, n) })
	if errors.Is(err, errBlobBusy) {
		return "", n, ErrCollected
	}
	return d, n, err
}
