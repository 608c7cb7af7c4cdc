package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"

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
		derived, err = isDerived(tx, d)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	if !found || r.Deleting {
		return nil, 0, ErrBlobUnknown
	}
	return s.openRecord(ctx, d, r, derived)
}

// isDerived reports whether blob d is derived from another (derived.go).
func isDerived(tx meta.Tx, d digest.Digest) (bool, error) {
	_, err := tx.Get(keyDerived(d))
	if errors.Is(err, meta.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// openRecord opens blob d, whose record is r, where r says it is.
func (s *Store) openRecord(ctx context.Context, d digest.Digest, r blobRecord, derived bool) (ReadSeekCloser, int64, error) {
	if derived {
		return s.openDerived(ctx, d)
	}
	// A blob in several stores is read from the first that answers.
	var lastErr error
	for _, l := range s.locations(r, d) {
		f, n, err := s.openKey(ctx, l.Store, l.Key, d, r.Size)
		if err == nil {
			return f, n, nil
		}
		if lastErr != nil || len(r.Copies) > 0 {
			s.Log.Warn("blob copy unreadable; trying the next store", "digest", d, "store", l.Store, "err", err)
		}
		lastErr = err
	}
	return nil, 0, lastErr
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

// WriteTo copies the rest of the blob to w, reading ahead of the writes (readAhead).
func (r *blobReader) WriteTo(w io.Writer) (int64, error) {
	if r.off >= r.size {
		return 0, nil
	}
	if r.rc == nil || r.rcAt != r.off {
		if err := r.openAt(r.off); err != nil {
			return 0, err
		}
	}
	n, err := readAhead(w, r.rc)
	r.off += n
	r.rcAt += n
	err = r.short(err)
	if err != nil {
		r.openAt(r.size)
	}
	return n, err
}

// short turns the end of a copy to the end of the blob that came before it (a store that
// closed its stream early: readAhead takes an unexpected EOF for the last buffer) into an
// error.
func (r *blobReader) short(err error) error {
	if err == nil && r.off < r.size {
		return fmt.Errorf("read blob %s at %d: %w", r.key, r.off, io.ErrUnexpectedEOF)
	}
	return err
}

func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	at, err := seekTo(r.off, r.size, offset, whence)
	if err == nil {
		r.off = at
	}
	return at, err
}

// seekTo is where io.Seeker's Seek(offset, whence) lands in content of size bytes read up
// to cur; positions past the end are allowed (reads there find io.EOF).
func seekTo(cur, size, offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += cur
	case io.SeekEnd:
		offset += size
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
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
	// Only the first location redirects: a client sent to a store that does not answer
	// cannot fall back, so a blob the first store holds is served as it always was.
	rd, ok := s.stores[r.Store].(Redirector)
	if !ok {
		return "", false, nil
	}
	return rd.RedirectURL(ctx, r.Key)
}

// Read-ahead of a copy from a store: aheadBufs buffers of aheadBuf bytes, so at most 8 MiB
// per copy whatever the blob's size. The buffers are aligned for direct I/O: a cold read
// through the cache hands them to the cache writer (cachefill.go).
const (
	aheadBuf  = 1 << 20
	aheadBufs = 8
)

var aheadPool = sync.Pool{New: func() any { b := alignedBuf(aheadBuf); return &b }}

// alignedBuf returns n bytes starting at a multiple of dioAlign.
func alignedBuf(n int) []byte {
	b := make([]byte, n+dioAlign)
	skip := (dioAlign - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%dioAlign)) % dioAlign
	return b[skip : skip+n : skip+n]
}

// readAhead copies src to w with the reads from the store running ahead of the writes to the
// client, so neither side waits for the other: a splice (or a plain copy loop) alternates
// between them, and a GET through the server then ran at 0.6-0.7x of a GET from the store
// itself. The reading goroutine stops at the first write error.
func readAhead(w io.Writer, src io.Reader) (int64, error) { return teeAhead(w, src, nil, nil) }

// teeAhead is readAhead that offers each buffer, once written to w, to keep (nil: none),
// which returns true when it takes the buffer (and puts it back in aheadPool itself). cut
// (nil: none) is called at a write error to unblock a read of src that may wait long.
func teeAhead(w io.Writer, src io.Reader, keep func(b *[]byte, n int) bool, cut func()) (int64, error) {
	type chunk struct {
		b   *[]byte
		n   int
		err error
	}
	full := make(chan chunk, aheadBufs)
	stop := make(chan struct{})
	go func() {
		defer close(full)
		for {
			b := aheadPool.Get().(*[]byte)
			n, err := io.ReadFull(src, *b)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF // a short last buffer
			}
			select {
			case full <- chunk{b, n, err}:
			case <-stop:
				aheadPool.Put(b)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var total int64
	var werr error
	for c := range full {
		if werr == nil && c.n > 0 {
			var m int
			m, werr = w.Write((*c.b)[:c.n])
			total += int64(m)
		}
		if werr != nil || c.n == 0 || keep == nil || !keep(c.b, c.n) {
			aheadPool.Put(c.b)
		}
		if werr != nil {
			if cut != nil {
				cut()
			}
			close(stop)
			for c := range full { // the reader's last chunk, if it was sending one
				aheadPool.Put(c.b)
			}
			return total, werr
		}
		if c.err == io.EOF {
			return total, nil
		}
		if c.err != nil {
			return total, c.err
		}
	}
	return total, nil
}

// SectionFile serves size bytes of f from off for http.ServeContent with fewer system calls
// than the bare file: Seek only records the position (ServeContent seeks to the end, back
// and to the range: three lseeks a request), Read is a pread, and the kernel's offset is set
// once, when the copy asks for the descriptor to sendfile from. A disk read in place sends
// thousands of small ranges, each paying these calls. The caller closes f.
func SectionFile(f *os.File, off, size int64) *FileSection {
	return &FileSection{f: f, base: off, size: size}
}

// FileSection is a section of a file read by position (SectionFile).
type FileSection struct {
	f          *os.File
	base, size int64
	pos        int64 // relative to base
	handed     bool  // the descriptor was handed out: the kernel's offset is the position
}

func (s *FileSection) Read(p []byte) (int, error) {
	if s.handed {
		if err := s.syncPos(); err != nil {
			return 0, err
		}
	}
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if rest := s.size - s.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.f.ReadAt(p, s.base+s.pos)
	s.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (s *FileSection) Seek(offset int64, whence int) (int64, error) {
	if s.handed {
		if err := s.syncPos(); err != nil {
			return 0, err
		}
	}
	at, err := seekTo(s.pos, s.size, offset, whence)
	if err == nil {
		s.pos = at
	}
	return at, err
}

// syncPos reads back the position after a copy that used the descriptor.
func (s *FileSection) syncPos() error {
	at, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	s.pos, s.handed = at-s.base, false
	return nil
}

// SyscallConn hands out the descriptor (net's sendfile takes it from here), its offset
// set to the position first.
func (s *FileSection) SyscallConn() (syscall.RawConn, error) {
	if !s.handed {
		if _, err := s.f.Seek(s.base+s.pos, io.SeekStart); err != nil {
			return nil, err
		}
		s.handed = true
	}
	return s.f.SyscallConn()
}
