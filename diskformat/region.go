package diskformat

// region is a byte range of the stream that a format asked to see. Bytes are
// captured contiguously from off; once want bytes are held, done runs.
type region struct {
	off  int64
	want int
	min  int // at the end of the stream, deliver if at least min bytes were captured
	buf  []byte
	done func([]byte)
	dead bool // its next byte went past before it was asked for
}

// next is the stream offset of the first byte the region still needs.
func (r *region) next() int64 { return r.off + int64(len(r.buf)) }

func (r *region) full() bool { return len(r.buf) == r.want }

// take copies from p, which holds the stream bytes starting at off, whatever
// part of p the region needs next.
func (r *region) take(p []byte, off int64) {
	next := r.next()
	if next < off {
		r.dead = true
		return
	}
	if next >= off+int64(len(p)) {
		return
	}
	start := int(next - off)
	n := min(len(p)-start, r.want-len(r.buf))
	r.buf = append(r.buf, p[start:start+n]...)
}

// tailRing keeps the last len(buf) bytes written to it.
type tailRing struct {
	buf  []byte
	pos  int   // where the next byte goes
	seen int64 // bytes ever written
}

func newTailRing(n int) *tailRing { return &tailRing{buf: make([]byte, n)} }

func (t *tailRing) write(p []byte) {
	t.seen += int64(len(p))
	if len(p) >= len(t.buf) {
		copy(t.buf, p[len(p)-len(t.buf):])
		t.pos = 0
		return
	}
	n := copy(t.buf[t.pos:], p)
	copy(t.buf, p[n:])
	t.pos = (t.pos + len(p)) % len(t.buf)
}

// bytes returns what the ring holds, oldest first.
func (t *tailRing) bytes() []byte {
	if t.seen < int64(len(t.buf)) {
		return append([]byte(nil), t.buf[:t.seen]...)
	}
	out := make([]byte, 0, len(t.buf))
	out = append(out, t.buf[t.pos:]...)
	return append(out, t.buf[:t.pos]...)
}
