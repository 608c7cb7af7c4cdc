package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// Derived describes a blob made of another: Prefix, then the whole base blob, then Suffix
// zero bytes. It is how a containerDisk layer (a tar holding the disk file) is served from
// the stored disk blob without a second copy on disk: the tar framing is generated on read.
type Derived struct {
	Base   digest.Digest `json:"base"`
	Prefix []byte        `json:"prefix"`
	Suffix int64         `json:"suffix"`
}

func keyDerived(d digest.Digest) string { return "derived:" + d.String() }

// PutDerived records blob d as derived from dv.Base and links it into repo. The caller
// computed d over the bytes dv describes; the base must be linked into repo already.
func (s *Store) PutDerived(ctx context.Context, repo string, d digest.Digest, dv Derived) error {
	size, err := s.StatBlob(ctx, repo, dv.Base)
	if err != nil {
		return fmt.Errorf("derive %s from %s: %w", d, dv.Base, err)
	}
	total := int64(len(dv.Prefix)) + size + dv.Suffix
	if _, err := s.claimBlob(ctx, d, total, ""); err != nil {
		return err
	}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		if err := putJSON(tx, keyDerived(d), dv); err != nil {
			return err
		}
		return s.linkBlob(tx, repo, d, total)
	})
	if errors.Is(err, errBlobBusy) {
		return ErrCollected
	}
	return err
}

// openDerived opens a derived blob as one seekable stream.
func (s *Store) openDerived(ctx context.Context, d digest.Digest) (ReadSeekCloser, int64, error) {
	var dv Derived
	err := s.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyDerived(d), &dv) })
	if errors.Is(err, meta.ErrNotFound) {
		return nil, 0, ErrBlobUnknown
	}
	if err != nil {
		return nil, 0, err
	}
	base, size, err := s.openStored(ctx, dv.Base)
	if err != nil {
		return nil, 0, err
	}
	f, ok := base.(io.ReaderAt)
	if !ok {
		base.Close()
		return nil, 0, fmt.Errorf("derived blob %s: base cannot be read at offsets", d)
	}
	parts := []io.ReaderAt{bytes.NewReader(dv.Prefix), f, zeros{}}
	sizes := []int64{int64(len(dv.Prefix)), size, dv.Suffix}
	r := &concatReader{parts: parts, sizes: sizes, closer: base}
	for _, n := range sizes {
		r.size += n
	}
	return r, r.size, nil
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

// concatReader reads parts one after another as one seekable stream.
type concatReader struct {
	parts  []io.ReaderAt
	sizes  []int64
	size   int64
	off    int64
	closer io.Closer
}

func (c *concatReader) Read(p []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	start := int64(0)
	for i, n := range c.sizes {
		if c.off < start+n {
			rel := c.off - start
			if int64(len(p)) > n-rel {
				p = p[:n-rel]
			}
			m, err := c.parts[i].ReadAt(p, rel)
			c.off += int64(m)
			if err == io.EOF && m > 0 {
				err = nil
			}
			return m, err
		}
		start += n
	}
	return 0, io.EOF
}

func (c *concatReader) Seek(offset int64, whence int) (int64, error) {
	at, err := seekTo(c.off, c.size, offset, whence)
	if err == nil {
		c.off = at
	}
	return at, err
}

func (c *concatReader) Close() error { return c.closer.Close() }
