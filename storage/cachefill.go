package storage

import (
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
)

// fillReader streams a blob from its store and, while the reads run from the start to the
// end without a jump, writes the same bytes to a cache file; once all are in, the fill is
// kept only if their digest matches (endFill). A seek elsewhere, a ReadAt, an error or a
// Close before the end discards it (the reader keeps serving from the store).
type fillReader struct {
	*blobReader
	c       *Cache
	d       digest.Digest
	image   string   // the image the read is for ("": none known)
	mayFill bool     // no fill tried yet, and reads under this context may fill
	tmp     *os.File // nil: not filling
	filled  int64
}

// begin starts the fill if this is the first read and it reads from byte 0.
func (r *fillReader) begin() {
	if r.mayFill && r.off == 0 {
		r.tmp = r.c.beginFill(r.d, r.size)
	}
	r.mayFill = false
}

// tee takes p, just read at offset at, into the fill.
func (r *fillReader) tee(p []byte, at int64) {
	if r.tmp == nil {
		return
	}
	if at != r.filled {
		r.end(false)
		return
	}
	if _, err := r.tmp.Write(p); err != nil {
		r.c.Log.Warn("cache: write fill", "digest", r.d, "err", err)
		r.end(false)
		return
	}
	r.filled += int64(len(p))
	if r.filled == r.size {
		r.end(true)
	}
}

// verifyFill hashes the size bytes of f (just written: read from the page cache).
func verifyFill(f *os.File, d digest.Digest, size int64) error {
	h := d.Algorithm().Hash()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("read fill back: %w", err)
	}
	if got := digest.NewDigestFromBytes(d.Algorithm(), h.Sum(nil)); got != d {
		return fmt.Errorf("digest mismatch: the store gave %s", got)
	}
	return nil
}

func (r *fillReader) end(ok bool) {
	if r.tmp == nil {
		return
	}
	// A complete fill is verified and committed behind the read (a hash and an fsync of up
	// to the whole blob), so the client that filled it is not kept waiting; Cache.Flush
	// waits for it. Until then d stays reserved: no second fill starts.
	d, key, image, size, tmp := r.d, r.key, r.image, r.size, r.tmp
	r.tmp = nil
	if !ok {
		r.c.endFill(d, key, image, size, tmp, false)
		return
	}
	r.c.commits.Add(1)
	go func() {
		defer r.c.commits.Done()
		r.c.endFill(d, key, image, size, tmp, true)
	}()
}

func (r *fillReader) Read(p []byte) (int, error) {
	r.begin()
	at := r.off
	n, err := r.blobReader.Read(p)
	r.tee(p[:n], at)
	if err != nil && err != io.EOF {
		r.end(false)
	}
	return n, err
}

// ReadAt serves from the store; it does not fill (reads in place are not sequential).
func (r *fillReader) ReadAt(p []byte, off int64) (int, error) {
	r.mayFill = false
	r.end(false)
	return r.blobReader.ReadAt(p, off)
}

// WriteTo copies the rest of the blob to w, through the fill while there is one. From a raw
// S3 connection the client follows the cache file as the kernel fills it (spliceFill). From
// any other stream the bytes go to the client first and writing them to the cache file runs
// beside the next read (fillPipe). Either way the digest is checked after the last byte went
// out (endFill).
func (r *fillReader) WriteTo(w io.Writer) (int64, error) {
	r.begin()
	if r.tmp == nil || r.off != r.filled {
		r.end(false)
		return r.blobReader.WriteTo(w)
	}
	if n, ok, err := r.spliceFill(w); ok {
		return n, err
	}
	p := newFillPipe(r.tmp)
	var total int64
	var rerr, werr error
	for r.off < r.size && rerr == nil && werr == nil {
		buf := p.buffer()
		n, err := io.ReadFull(r.blobReader, buf[:min(int64(len(buf)), r.size-r.off)])
		if err != nil {
			rerr = err
		}
		if n > 0 {
			var m int
			m, werr = w.Write(buf[:n])
			total += int64(m)
			p.send(buf[:n])
		}
	}
	filled, ferr := p.finish()
	r.filled += filled
	switch {
	case rerr != nil || werr != nil || ferr != nil:
		if ferr != nil {
			r.c.Log.Warn("cache: write fill", "digest", r.d, "err", ferr)
		}
		r.end(false)
		if rerr != nil {
			return total, rerr
		}
		return total, werr
	default:
		r.end(r.filled == r.size)
		return total, nil
	}
}

// fillPipe writes chunks to a cache file on its own goroutine, with a few
// buffers in flight; memory stays fillBuffers MiB per cold read.
type fillPipe struct {
	free, work chan []byte
	done       chan error
	n          int64
}

const fillBuffers = 4

func newFillPipe(f io.Writer) *fillPipe {
	p := &fillPipe{free: make(chan []byte, fillBuffers), work: make(chan []byte, fillBuffers), done: make(chan error, 1)}
	for range fillBuffers {
		p.free <- make([]byte, 1<<20)
	}
	go func() {
		var err error
		for b := range p.work {
			if err == nil {
				if _, err = f.Write(b); err == nil {
					p.n += int64(len(b))
				}
			}
			p.free <- b[:cap(b)]
		}
		p.done <- err
	}()
	return p
}

func (p *fillPipe) buffer() []byte { return <-p.free }
func (p *fillPipe) send(b []byte)  { p.work <- b }

// finish waits for the chunks sent and returns the bytes written and the first error.
func (p *fillPipe) finish() (int64, error) {
	close(p.work)
	err := <-p.done
	return p.n, err
}

func (r *fillReader) Close() error {
	r.end(false) // a complete fill has ended already
	return r.blobReader.Close()
}
