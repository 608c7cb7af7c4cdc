package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
)

// A cold read through the cache must not be slower than a read without it. The client is
// sent the store's bytes exactly as without a cache (readAhead's buffers), and each buffer,
// once sent, goes to a cache writer goroutine that writes it to the fill's file with
// O_DIRECT: no page-cache pages are allocated, and on a VM whose freed memory goes back to
// the host (virtio-balloon free page reporting) touching 1 GiB of fresh page cache cost
// ~1.2 CPU-s, which made a cold 1 GiB GET 0.43-0.68x of one without the cache. The client
// never waits for the cache disk: the writer may lag fillWindow buffers behind; past that
// the relay detaches it, and once the client has every byte the writer fetches the rest with
// a ranged GET from the store at its own offset (so the client's GET never shares the store
// with it). The digest is checked on what is on disk (read back with O_DIRECT) before the
// file becomes the entry. Where O_DIRECT is refused the same writes go through the page
// cache. Other cold GETs of the blob meanwhile share the fill: they send the file as the
// writer publishes it (followFill), at the writer's pace. A prefetch, which nobody waits
// for, is paced by the writer and never detaches it. Measured on a 2-core VM (regbench,
// phase cache, 1 GiB): 0.86-1.03x of a GET without the cache and 0.49-0.61 CPU-s in the
// GET (0.72-0.77x and 0.65-0.68 CPU-s before); the rest of the fill after it (a second read
// of the object when the disk fell behind, hash, fsync) brings the fill to ~2 CPU-s.
const (
	// fillWindow is how many buffers (aheadBuf each) the cache writer may hold before the
	// relay stops feeding it: the memory a cold read adds to readAhead's.
	fillWindow = 8
	// fillStall is how long the store may take to send the next buffer of the rest of a
	// detached fill before the fill is given up.
	fillStall = time.Minute
	// dioAlign is the alignment of direct I/O: offsets, lengths and buffer addresses
	// (4096 covers disks with 512 and 4096-byte logical blocks).
	dioAlign = 4096
)

// Set by tests only: fillWriteHook, when not nil, is called by the cache writer before each
// write with its offset (it stands for a slow cache disk); enableDirect turns on O_DIRECT for
// a fill's file (a test has it refused, as a filesystem without direct I/O does).
var (
	fillWriteHook func(off int64)
	enableDirect  = func(f *os.File) error { return setDirect(f, true) }
)

// fillReader streams a blob from its store and, while the reads run from the start to the
// end without a jump, hands the same bytes to a cache fill. A seek elsewhere, a ReadAt, an
// error or a Close before the end discards the fill (the reader keeps serving from the
// store).
type fillReader struct {
	*blobReader
	c       *Cache
	d       digest.Digest
	image   string // the image the read is for ("": none known)
	mayFill bool   // no fill tried yet, and reads under this context may fill
	fill    *cacheFill
	follow  *cacheFill // another reader's fill of the blob, which a copy from byte 0 follows
}

// begin starts the fill if this is the first read and it reads from byte 0, or finds the
// fill of the blob another reader started.
func (r *fillReader) begin() {
	if r.mayFill && r.off == 0 {
		r.fill, r.follow = newCacheFill(r.c, r.blobReader, r.d, r.image)
	}
	r.mayFill = false
}

// end ends the fill's feeding: kept when the reader delivered every byte from the start
// (the writer completes it), discarded otherwise.
func (r *fillReader) end() {
	if r.fill != nil {
		r.fill.end(r.fill.pos() == r.size)
		r.fill = nil
	}
}

// jumped discards the fill if the reader is not where its bytes have come to (a Seek):
// what it reads next is not the blob from its start.
func (r *fillReader) jumped() {
	if r.fill != nil && r.off != r.fill.pos() {
		r.fill.end(false)
		r.fill = nil
	}
}

func (r *fillReader) Read(p []byte) (int, error) {
	r.begin()
	r.jumped()
	n, err := r.blobReader.Read(p)
	if r.fill != nil {
		r.fill.copyIn(p[:n])
	}
	if (err != nil && err != io.EOF) || r.off == r.size {
		r.end()
	}
	return n, err
}

// ReadAt serves from the store; it does not fill (reads in place are not sequential).
func (r *fillReader) ReadAt(p []byte, off int64) (int, error) {
	r.mayFill = false
	if r.fill != nil {
		r.fill.end(false)
		r.fill = nil
	}
	return r.blobReader.ReadAt(p, off)
}

// WriteTo copies the rest of the blob to w as blobReader.WriteTo does, handing each buffer
// sent to the fill.
func (r *fillReader) WriteTo(w io.Writer) (int64, error) {
	r.begin()
	r.jumped()
	if r.follow != nil && r.off == 0 {
		return r.followFill(w)
	}
	if r.fill == nil || r.off >= r.size {
		r.end()
		return r.blobReader.WriteTo(w)
	}
	if r.rc == nil || r.rcAt != r.off {
		if err := r.openAt(r.off); err != nil {
			r.end()
			return 0, err
		}
	}
	r.fill.flush()
	// A client that goes away ends the store's read at once, even one waiting for the store.
	rc := r.rc
	stop := context.AfterFunc(r.ctx, func() { rc.Close() })
	n, err := teeAhead(w, rc, r.fill.hand, func() { rc.Close() })
	stop()
	r.off += n
	r.rcAt += n
	err = r.short(err)
	if err != nil {
		r.openAt(r.size)
	}
	r.end()
	return n, err
}

func (r *fillReader) Close() error {
	r.end() // kept when every byte was read
	return r.blobReader.Close()
}

// cacheFill is one fill of a blob into the cache: the reader's side feeds it (hand, copyIn)
// and ends it (end); its writer goroutine (run) writes the file, completes it from the
// store when it was detached, verifies, and commits or discards it.
type cacheFill struct {
	c     *Cache
	store BlobStore
	ctx   context.Context // the first reader's, without its cancellation
	key   string
	d     digest.Digest
	image string
	size  int64
	f     *os.File
	paced bool // the reader only fills (a prefetch): it waits for the writer, never detaches it

	// The reader's side.
	at      int64   // bytes the reader has passed on (handed to the writer while attached)
	acc     *[]byte // Read's bytes not yet handed (copyIn)
	accN    int
	work    chan fillChunk // closed when the reader detaches or ends
	closed  bool
	verdict chan bool   // the reader's end: true when it delivered every byte
	aborted atomic.Bool // the reader ended without every byte

	// The writer's side.
	written int64
	direct  bool // writes still use O_DIRECT
	usedDIO bool // some went to disk with O_DIRECT (read back the same way)

	// What followers (other readers of the blob) may read of the file: pub bytes from its
	// start; ended: no more will come.
	mu    sync.Mutex
	cond  sync.Cond
	pub   int64
	ended bool
}

type fillChunk struct {
	b *[]byte
	n int
}

// newCacheFill starts the fill of blob d read by br. When the cache takes none it returns
// nil and the fill of d under way, if any (d is being filled already; or it is cached, does
// not fit, or no file can be made).
func newCacheFill(c *Cache, br *blobReader, d digest.Digest, image string) (fill, other *cacheFill) {
	t := &cacheFill{c: c, store: br.b, ctx: context.WithoutCancel(br.ctx), key: br.key, d: d, image: image,
		size: br.size, paced: br.ctx.Value(fillOnlyKey{}) != nil, work: make(chan fillChunk, fillWindow), verdict: make(chan bool, 1)}
	t.cond.L = &t.mu
	ok, other := c.beginFill(t)
	if !ok {
		return nil, other
	}
	f := t.f
	if err := enableDirect(f); err == nil {
		t.direct, t.usedDIO = true, true
	} else {
		c.Log.Debug("cache: no direct I/O for fills; writing through the page cache", "err", err)
	}
	go t.run()
	return t, nil
}

// pos is how far the reader's bytes have come in (handed or held by copyIn).
func (t *cacheFill) pos() int64 { return t.at + int64(t.accN) }

// hand offers b (n bytes, just sent to the client) to the writer; true: the writer owns it
// now. A writer more than fillWindow buffers behind is detached: from then on it gets
// nothing and completes the file from the store itself.
func (t *cacheFill) hand(b *[]byte, n int) bool {
	t.at += int64(n)
	if t.closed {
		return false
	}
	if t.paced {
		t.work <- fillChunk{b, n}
		return true
	}
	select {
	case t.work <- fillChunk{b, n}:
		return true
	default:
		t.c.Log.Debug("cache: writer behind; completes the fill from the store", "digest", t.d, "at", t.at)
		t.detach()
		return false
	}
}

func (t *cacheFill) detach() {
	if !t.closed {
		t.closed = true
		close(t.work)
	}
}

// copyIn hands over p (bytes a Read returned) in whole buffers, so the writer's offsets stay
// aligned for O_DIRECT.
func (t *cacheFill) copyIn(p []byte) {
	for len(p) > 0 {
		if t.closed {
			t.at += int64(len(p))
			return
		}
		if t.acc == nil {
			t.acc, t.accN = aheadPool.Get().(*[]byte), 0
		}
		k := copy((*t.acc)[t.accN:], p)
		t.accN += k
		p = p[k:]
		if t.accN == len(*t.acc) {
			t.flush()
		}
	}
}

// flush hands over what copyIn holds.
func (t *cacheFill) flush() {
	if t.acc == nil {
		return
	}
	b, n := t.acc, t.accN
	t.acc, t.accN = nil, 0
	if n == 0 || !t.hand(b, n) {
		aheadPool.Put(b)
	}
}

// end is the reader's last word: ok when it delivered every byte, so the fill is completed
// and committed behind it; otherwise it is discarded, also behind it (a writer held by a
// slow disk must not hold the reader). Cache.Flush waits for either.
func (t *cacheFill) end(ok bool) {
	if ok {
		t.flush()
	} else {
		t.aborted.Store(true) // the writer skips what it still holds
		if t.acc != nil {
			aheadPool.Put(t.acc)
			t.acc, t.accN = nil, 0
		}
	}
	t.detach()
	// Flush (and Close) wait for the fill from here on, not while a reader may still be
	// streaming (a slow client must not hold up a shutdown).
	t.c.commits.Add(1)
	t.verdict <- ok
}

// run is the cache writer.
func (t *cacheFill) run() {
	var err error
	for ch := range t.work {
		if err == nil && !t.aborted.Load() {
			err = t.write((*ch.b)[:ch.n])
		}
		aheadPool.Put(ch.b)
	}
	ok := <-t.verdict
	defer t.c.commits.Done() // counted by end
	if !ok {
		t.c.endFill(t, errors.New("partial fill"), false)
		return
	}
	if err == nil && t.written < t.size {
		err = t.fetchRest()
	}
	t.c.endFill(t, err, true)
}

// write writes b at the writer's offset: the aligned part with O_DIRECT, the rest (the
// blob's last partial block, or everything after an unaligned start) through the page
// cache, O_DIRECT turned off for good.
func (t *cacheFill) write(b []byte) error {
	if fillWriteHook != nil {
		fillWriteHook(t.written)
	}
	if k := len(b) &^ (dioAlign - 1); t.direct && k > 0 && t.written%dioAlign == 0 {
		n, err := t.f.WriteAt(b[:k], t.written)
		t.written += int64(n)
		switch {
		case err == nil:
			b = b[k:]
		case n == 0 && errors.Is(err, syscall.EINVAL):
			t.c.Log.Debug("cache: direct write refused; writing through the page cache", "digest", t.d, "err", err)
		default:
			return fmt.Errorf("write cache file at %d: %w", t.written, err)
		}
	}
	if len(b) == 0 {
		t.publish(t.written)
		return nil
	}
	if t.direct {
		if err := setDirect(t.f, false); err != nil {
			return fmt.Errorf("cache file: turn off direct I/O: %w", err)
		}
		t.direct = false
	}
	n, err := t.f.WriteAt(b, t.written)
	t.written += int64(n)
	if err != nil {
		return fmt.Errorf("write cache file at %d: %w", t.written, err)
	}
	t.publish(t.written)
	return nil
}

// fetchRest writes what the writer was not handed, read from the store by a ranged GET from
// its offset (read ahead of the writes, as a client's copy is); a store that sends nothing
// for fillStall ends it.
func (t *cacheFill) fetchRest() error {
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	stall := time.AfterFunc(fillStall, cancel)
	defer stall.Stop()
	from := t.written
	rc, err := t.store.Open(ctx, t.key, from, t.size-from)
	if err != nil {
		return fmt.Errorf("open the rest of the fill at %d: %w", from, err)
	}
	defer rc.Close()
	// A stream that does not watch its context (a raw S3 connection) is closed instead.
	defer context.AfterFunc(ctx, func() { rc.Close() })()
	n, err := teeAhead(fillFile{t, stall}, io.LimitReader(rc, t.size-from), nil, func() { rc.Close() })
	if err == nil && from+n < t.size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("the rest of the fill from %d, at %d: %w", from, from+n, err)
	}
	return nil
}

// fillFile writes a fill's rest to its file; each write gives the store fillStall more.
type fillFile struct {
	t     *cacheFill
	stall *time.Timer
}

func (w fillFile) Write(p []byte) (int, error) {
	at := w.t.written
	err := w.t.write(p)
	w.stall.Reset(fillStall)
	return int(w.t.written - at), err
}

// publish tells followers the file holds n bytes from its start.
func (t *cacheFill) publish(n int64) {
	t.mu.Lock()
	t.pub = n
	t.mu.Unlock()
	t.cond.Broadcast()
}

// publishEnd tells followers no more bytes will come.
func (t *cacheFill) publishEnd() {
	t.mu.Lock()
	t.ended = true
	t.mu.Unlock()
	t.cond.Broadcast()
}

// beyond waits until the file holds more than at bytes, the fill has ended or ctx is done,
// and returns how many it holds.
func (t *cacheFill) beyond(ctx context.Context, at int64) int64 {
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock() // so the broadcast cannot fall between the check and the wait
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.pub <= at && !t.ended && ctx.Err() == nil {
		t.cond.Wait()
	}
	return t.pub
}

// followFill is WriteTo for a reader of a blob another reader is filling: it sends w the
// file as the fill's writer publishes it (sendfile, through the response's ReadFrom), so
// concurrent cold reads cost the store one read; they go at the writer's pace. Where the
// fill ends short (discarded), the rest comes from the store.
func (r *fillReader) followFill(w io.Writer) (int64, error) {
	t := r.follow
	r.follow = nil
	src, err := openRead(t.f.Name())
	if err != nil { // committed or discarded in the meantime
		return r.blobReader.WriteTo(w)
	}
	defer src.Close()
	var sent int64
	for r.off < r.size {
		n := min(t.beyond(r.ctx, r.off), r.size)
		if n <= r.off {
			break // the fill ended here, or the client left
		}
		// A LimitedReader of the file: the response's ReadFrom turns it into sendfile.
		want := n - r.off
		m, err := io.Copy(w, &io.LimitedReader{R: src, N: want})
		r.off += m
		sent += m
		if err == nil && m < want {
			err = fmt.Errorf("cache file shorter than its fill: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return sent, err
		}
	}
	if err := r.ctx.Err(); err != nil && r.off < r.size {
		return sent, err
	}
	m, err := r.blobReader.WriteTo(w) // the rest, when the fill ended short
	return sent + m, err
}

// verifyFill hashes the size bytes of the fill's file. A file written with O_DIRECT is read
// back the same way into one reused buffer, so checking it allocates no page cache either.
// Reading back rather than hashing in the writer keeps the hash (0.62 CPU-s per GiB here)
// out of the client's GET; the read adds 0.08 CPU-s and ~0.45 s per GiB after it.
func verifyFill(f *os.File, d digest.Digest, size int64, direct bool) error {
	h := d.Algorithm().Hash()
	b := aheadPool.Get().(*[]byte)
	defer aheadPool.Put(b)
	var src io.Reader = io.NewSectionReader(f, 0, size)
	if direct {
		df, err := openDirect(f.Name())
		if err != nil {
			return fmt.Errorf("read fill back: %w", err)
		}
		defer df.Close()
		src = df
	}
	// One read at a time, never past size: a direct read must stay aligned, so only the
	// last may come back short.
	for got := int64(0); got < size; {
		n, err := src.Read(*b)
		if n == 0 && err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if n > 0 {
			n = int(min(int64(n), size-got))
			h.Write((*b)[:n])
			got += int64(n)
			err = nil
		}
		if err != nil {
			return fmt.Errorf("read fill back at %d: %w", got, err)
		}
	}
	if got := digest.NewDigestFromBytes(d.Algorithm(), h.Sum(nil)); got != d {
		return fmt.Errorf("digest mismatch: the store gave %s", got)
	}
	return nil
}
