package storage

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// openStored opens blob d where its record says it is, whatever repository holds it: a
// file when the store keeps files (so GETs go out with sendfile), else a ranged stream.
func (s *Store) openStored(ctx context.Context, d digest.Digest) (ReadSeekCloser, int64, error) {
	var r blobRecord
	var found, derived bool
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		if r, found, err = getBlobRecord(tx, d); err != nil || !found {
			return err
		}
		_, err = tx.Get(keyDerived(d))
		derived = err == nil
		if errors.Is(err, meta.ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	if !found || r.Deleting {
		return nil, 0, ErrBlobUnknown
	}
	if derived {
		return s.openDerived(ctx, d)
	}
	name, key := s.location(r, d)
	return s.openKey(ctx, name, key, d, r.Size)
}

// openKey opens key in store name, which holds blob d; size is what the record says it
// holds. A store behind the node's cache answers from it when it can.
func (s *Store) openKey(ctx context.Context, name, key string, d digest.Digest, size int64) (ReadSeekCloser, int64, error) {
	b, ok := s.stores[name]
	if !ok {
		return nil, 0, fmt.Errorf("blob at %s in store %q, which is not configured: %w", key, name, ErrStoreUnavailable)
	}
	if do, ok := b.(digestOpener); ok {
		f, err := do.openDigest(ctx, key, d, size)
		if errors.Is(err, ErrNotExist) {
			return nil, 0, ErrBlobUnknown
		}
		if err != nil {
			return nil, 0, err
		}
		return f, size, nil
	}
	if fo, ok := b.(FileOpener); ok {
		f, err := fo.OpenFile(ctx, key)
		if errors.Is(err, ErrNotExist) {
			return nil, 0, ErrBlobUnknown
		}
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("stat blob %s: %w", key, err)
		}
		return f, st.Size(), nil
	}
	br := &blobReader{ctx: ctx, b: b, key: key, size: size}
	// The first stream is opened now, so an unreachable store or a missing object is an
	// error before any response is written.
	if err := br.openAt(0); err != nil {
		if errors.Is(err, ErrNotExist) {
			return nil, 0, ErrBlobUnknown
		}
		return nil, 0, err
	}
	return br, size, nil
}

// blobReader reads an object of a store that serves ranges (S3) as a seekable stream. It
// keeps one ranged stream open and reopens only when a read does not continue where the
// last one ended, so sequential reads (ServeContent, a derived blob's concatenation) cost
// one request. It is not safe for concurrent use.
type blobReader struct {
	ctx  context.Context
	b    BlobStore
	key  string
	size int64
	off  int64         // Read/Seek position
	rc   io.ReadCloser // open stream, or nil
	rcAt int64         // where rc reads next
}

func (r *blobReader) openAt(off int64) error {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
	if off >= r.size {
		return nil
	}
	rc, err := r.b.Open(r.ctx, r.key, off, r.size-off)
	if err != nil {
		return err
	}
	r.rc, r.rcAt = rc, off
	return nil
}

func (r *blobReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	if r.rc == nil || r.rcAt != off {
		if err := r.openAt(off); err != nil {
			return 0, err
		}
	}
	want := len(p)
	if rest := r.size - off; int64(want) > rest {
		p = p[:rest]
	}
	n, err := io.ReadFull(r.rc, p)
	r.rcAt += int64(n)
	if err != nil {
		r.openAt(r.size) // closes the stream; the next read reopens
		return n, fmt.Errorf("read blob %s at %d: %w", r.key, off+int64(n), err)
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Read returns what one read of the open stream gives (no waiting to fill p), so a copy
// to a client keeps pace with the store.
func (r *blobReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.rc == nil || r.rcAt != r.off {
		if err := r.openAt(r.off); err != nil {
			return 0, err
		}
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.rc.Read(p)
	r.rcAt += int64(n)
	r.off += int64(n)
	if err == io.EOF && r.off < r.size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		r.openAt(r.size) // closes the stream; the next read reopens
		return n, fmt.Errorf("read blob %s at %d: %w", r.key, r.off, err)
	}
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteTo copies the rest of the blob to w; a stream that can hand its connection to w's
// ReadFrom (S3's raw GET) does, so no byte passes through this process's memory.
func (r *blobReader) WriteTo(w io.Writer) (int64, error) {
	if r.off >= r.size {
		return 0, nil
	}
	if r.rc == nil || r.rcAt != r.off {
		if err := r.openAt(r.off); err != nil {
			return 0, err
		}
	}
	var n int64
	var err error
	if wt, ok := r.rc.(io.WriterTo); ok {
		n, err = wt.WriteTo(w)
	} else {
		n, err = io.CopyBuffer(w, struct{ io.Reader }{r.rc}, make([]byte, 1<<20))
	}
	r.off += n
	r.rcAt += n
	if err != nil {
		r.openAt(r.size)
	}
	return n, err
}

func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	r.off = offset
	return offset, nil
}

func (r *blobReader) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}

// BlobRedirect returns a short-lived URL a client may fetch blob d from directly, when
// d's store hands them out (a presigned S3 GET); ok is false otherwise. The caller has
// authorised the read.
func (s *Store) BlobRedirect(ctx context.Context, d digest.Digest) (string, bool, error) {
	var r blobRecord
	var found bool
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		r, found, err = getBlobRecord(tx, d)
		return err
	})
	if err != nil || !found || r.Key == "" {
		return "", false, err
	}
	rd, ok := s.stores[r.Store].(Redirector)
	if !ok {
		return "", false, nil
	}
	return rd.RedirectURL(ctx, r.Key)
}
