package diskformat

import "errors"

const (
	// headSize is how much of the start of the stream is always kept: every
	// magic number, the ISO volume descriptors at 32 KiB and the usual GPT
	// partition entries fit.
	headSize = 64 << 10
	// tailSize is the end of the stream kept for formats with a footer: the
	// streamOptimized VMDK footer marker, footer and end-of-stream marker.
	tailSize = 1536
	// maxRegion caps one captured region (the VMDK descriptor limit of qemu).
	maxRegion = 1 << 20
	// maxHeld caps all captured regions together, whatever the headers say.
	maxHeld = 4 << 20
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("diskformat: write to a closed inspector")

// stream is what a format's parser may ask of the bytes it reads.
type stream interface {
	// capture asks for n bytes at off. done runs once they have streamed
	// past, or at the end of the stream with at least min of them. Bytes
	// before the current position are gone (the head excepted), and a
	// request over the budget is dropped: done then never runs and the
	// parser reports the data as missing.
	capture(off int64, n, min int, done func([]byte))
	// keepTail asks for the last tailSize bytes at the end of the stream.
	keepTail()
}

// streamEnd is what a parser learns when the stream ends.
type streamEnd struct {
	size int64  // total bytes
	tail []byte // the last tailSize bytes (fewer for a short stream), if asked for
}

// outcome is one format's verdict on a stream.
type outcome struct {
	format      string
	virtualSize int64
	err         error // why the image is unsafe; nil when it is safe
}

// parser judges a stream once it has ended; ok is false when the bytes turn
// out not to be its format after all.
type parser interface {
	verdict(end streamEnd) (o outcome, ok bool)
}

// Inspector detects the format of a disk image written to it, keeping only
// the header regions it needs. It is not safe for concurrent use.
type Inspector struct {
	n       int64 // bytes written
	head    []byte
	probed  bool
	busy    bool  // the head or some region still wants bytes
	horizon int64 // bytes before this offset are gone for new regions
	regions []*region
	held    int
	tail    *tailRing
	parsers []parser
	closed  bool
	report  Report
}

// NewInspector returns an Inspector ready for the first byte of a stream.
func NewInspector() *Inspector {
	return &Inspector{head: make([]byte, 0, headSize), busy: true}
}

// Write feeds the next bytes of the stream. It never fails before Close, so
// it can sit in an io.MultiWriter next to the hashes and the store.
func (in *Inspector) Write(p []byte) (int, error) {
	if in.closed {
		return 0, ErrClosed
	}
	off := in.n
	in.n += int64(len(p))
	if in.busy {
		in.observe(p, off)
	}
	if in.tail != nil {
		in.tail.write(p[pastHead(off, len(p)):])
	}
	return len(p), nil
}

// pastHead is the index in a chunk at off of its first byte beyond the head;
// the tail ring only needs those, the head holds the rest.
func pastHead(off int64, n int) int {
	if off >= headSize {
		return 0
	}
	return int(min(headSize-off, int64(n)))
}

// Close ends the stream and decides the verdict. It is idempotent.
func (in *Inspector) Close() error {
	if in.closed {
		return nil
	}
	in.closed = true
	in.horizon = in.n
	if !in.probed {
		in.probe()
	}
	in.finishRegions()
	in.report = in.decide()
	return nil
}

// Report returns the verdict, closing the stream first if needed.
func (in *Inspector) Report() Report {
	in.Close()
	return in.report
}

// observe routes a chunk at off to the head and to pending regions.
func (in *Inspector) observe(p []byte, off int64) {
	if !in.probed {
		k := min(len(p), headSize-len(in.head))
		in.head = append(in.head, p[:k]...)
		if len(in.head) < headSize {
			return
		}
		in.probe()
	}
	in.feed(p, off)
}

// probe runs every format's magic check over the head.
func (in *Inspector) probe() {
	in.probed = true
	if !in.closed {
		in.horizon = int64(len(in.head))
	}
	for _, probe := range probes {
		if p := probe(in, in.head); p != nil {
			in.parsers = append(in.parsers, p)
		}
	}
	in.busy = len(in.regions) > 0
}

// feed gives a chunk to the pending regions; a completed region's callback
// may add regions, which are fed from the same chunk.
func (in *Inspector) feed(p []byte, off int64) {
	for i := 0; i < len(in.regions); i++ {
		r := in.regions[i]
		r.take(p, off)
		if r.full() {
			in.deliver(r)
		}
	}
	in.prune()
}

// deliver hands a region its bytes. Regions it adds may only use bytes
// after the last one it saw, whatever the chunking, so results never depend
// on how the stream was cut.
func (in *Inspector) deliver(r *region) {
	done := r.done
	r.done = nil
	if done == nil {
		return
	}
	if !in.closed {
		in.horizon = r.next()
	}
	done(r.buf)
}

func (in *Inspector) prune() {
	kept := in.regions[:0]
	for _, r := range in.regions {
		if r.done != nil && !r.dead {
			kept = append(kept, r)
		}
	}
	clear(in.regions[len(kept):])
	in.regions = kept
	in.busy = len(kept) > 0
}

// finishRegions delivers, at the end of the stream, every region holding at
// least its minimum.
func (in *Inspector) finishRegions() {
	for i := 0; i < len(in.regions); i++ {
		if r := in.regions[i]; len(r.buf) >= r.min {
			in.deliver(r)
		}
	}
	in.regions = nil
	in.busy = false
}

func (in *Inspector) capture(off int64, n, minLen int, done func([]byte)) {
	if off < 0 || n <= 0 || n > maxRegion || minLen > n || in.held+n > maxHeld {
		return
	}
	in.held += n
	r := &region{off: off, want: n, min: minLen, done: done}
	if off < int64(len(in.head)) {
		end := min(int64(len(in.head)), off+int64(n))
		r.buf = append(make([]byte, 0, min(n, 64<<10)), in.head[off:end]...)
	}
	if r.full() || r.next() < in.horizon {
		// Complete, or its next byte is gone: decide now, as at the end.
		if len(r.buf) >= r.min {
			in.deliver(r)
		}
		return
	}
	in.regions = append(in.regions, r)
	in.busy = true
}

func (in *Inspector) keepTail() {
	if in.tail == nil {
		in.tail = newTailRing(tailSize)
	}
}

// tailBytes returns the last tailSize bytes of the stream (fewer if it is
// shorter). The ring only sees bytes past the head; when it holds less than
// tailSize, nothing was skipped and the head supplies the rest.
func (in *Inspector) tailBytes() []byte {
	if in.tail == nil {
		return nil
	}
	t := in.tail.bytes()
	if len(t) >= tailSize {
		return t
	}
	h := in.head
	if need := tailSize - len(t); len(h) > need {
		h = h[len(h)-need:]
	}
	return append(append([]byte(nil), h...), t...)
}

// skippable says how many bytes from the current position no region, and
// not the tail, will ever need, for a stream of the given total size. Only
// readers that can seek use it (InspectReaderAt); a Write stream never skips.
func (in *Inspector) skippable(size int64) int64 {
	if !in.probed {
		return 0
	}
	limit := size
	for _, r := range in.regions {
		limit = min(limit, r.next())
	}
	if in.tail != nil {
		limit = min(limit, size-tailSize)
	}
	return max(0, limit-in.n)
}

// skip advances over n bytes that skippable said nobody needs.
func (in *Inspector) skip(n int64) { in.n += n }
