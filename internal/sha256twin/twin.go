// Package sha256twin hashes one byte stream into two SHA-256 digests in a single pass: the
// digest of the stream, and the digest of the stream behind a fixed prefix whose length is a
// whole number of 64-byte blocks. It is how an uploaded disk gets its own digest and that of
// its containerDisk layer (a tar header, then the disk) without hashing the bytes twice.
//
// The two digests differ only in the state their rounds start from: both see the same
// message blocks. With the x86 SHA extensions one message schedule feeds two interleaved
// chains of rounds, which the CPU runs side by side for little more than the cost of one
// (a SHA256RNDS2 chain is bound by the instruction's latency, not its throughput).
// Elsewhere it falls back to two ordinary hashes.
package sha256twin

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

const blockSize = 64

// Hash is a hash.Hash of the stream written to it (Sum gives the stream's own digest);
// Prefixed gives the digest of prefix+stream.
type Hash struct {
	prefix []byte

	// Without the SHA extensions: two ordinary hashes.
	plain, prefixed hash.Hash

	// With them: both states in the block function's layout, the partial block, and the
	// stream's length.
	a, b state
	buf  [blockSize]byte
	nbuf int
	n    uint64
}

// New returns a Hash whose Prefixed digest covers prefix before the stream. len(prefix)
// must be a multiple of 64.
func New(prefix []byte) (*Hash, error) {
	if len(prefix)%blockSize != 0 {
		return nil, fmt.Errorf("sha256twin: prefix of %d bytes is not a whole number of %d-byte blocks", len(prefix), blockSize)
	}
	h := &Hash{prefix: prefix}
	h.Reset()
	return h, nil
}

// Reset starts both digests over.
func (h *Hash) Reset() {
	if !haveSHA {
		h.plain, h.prefixed = sha256.New(), sha256.New()
		h.prefixed.Write(h.prefix)
		return
	}
	p := sha256.New()
	h.a = stateOf(p)
	p.Write(h.prefix)
	h.b = stateOf(p)
	h.nbuf, h.n = 0, 0
}

func (h *Hash) Write(p []byte) (int, error) {
	if !haveSHA {
		h.plain.Write(p)
		h.prefixed.Write(p)
		return len(p), nil
	}
	written := len(p)
	h.n += uint64(len(p))
	if h.nbuf > 0 {
		k := copy(h.buf[h.nbuf:], p)
		h.nbuf += k
		p = p[k:]
		if h.nbuf < blockSize {
			return written, nil
		}
		blockTwin(&h.a, &h.b, h.buf[:])
		h.nbuf = 0
	}
	if whole := len(p) &^ (blockSize - 1); whole > 0 {
		blockTwin(&h.a, &h.b, p[:whole])
		p = p[whole:]
	}
	h.nbuf = copy(h.buf[:], p)
	return written, nil
}

// Plain returns an ordinary SHA-256 hash holding the stream so far; writing to it goes on
// from there without touching h.
func (h *Hash) Plain() hash.Hash {
	if !haveSHA {
		return clone(h.plain)
	}
	return h.resume(h.a, h.n)
}

// Prefixed returns an ordinary SHA-256 hash holding prefix+stream so far (to add a suffix
// and take the sum); writing to it does not touch h.
func (h *Hash) Prefixed() hash.Hash {
	if !haveSHA {
		return clone(h.prefixed)
	}
	return h.resume(h.b, uint64(len(h.prefix))+h.n)
}

// Sum appends the digest of the stream to b.
func (h *Hash) Sum(b []byte) []byte { return h.Plain().Sum(b) }

func (h *Hash) Size() int      { return sha256.Size }
func (h *Hash) BlockSize() int { return blockSize }

// The marshalled form of crypto/sha256's state (stable: saved states must load in later
// Go releases): magic, the eight state words, the partial block padded to 64 bytes, and the
// message length, all big-endian.
const (
	magic         = "sha\x03"
	marshaledSize = len(magic) + 8*4 + blockSize + 8
)

// stateOf reads the state words of a crypto/sha256 hash that holds whole blocks.
func stateOf(d hash.Hash) state {
	b, err := d.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || len(b) != marshaledSize || string(b[:len(magic)]) != magic {
		panic(errors.New("sha256twin: crypto/sha256 state has an unknown form"))
	}
	var w [8]uint32
	for i := range w {
		w[i] = binary.BigEndian.Uint32(b[len(magic)+4*i:])
	}
	return toState(w)
}

// resume builds a crypto/sha256 hash from a state, h's partial block and a length.
func (h *Hash) resume(s state, length uint64) hash.Hash {
	b := make([]byte, 0, marshaledSize)
	b = append(b, magic...)
	for _, w := range fromState(s) {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	b = append(b, h.buf[:h.nbuf]...)
	b = append(b, make([]byte, blockSize-h.nbuf)...)
	b = binary.BigEndian.AppendUint64(b, length)
	d := sha256.New()
	if err := d.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		panic(fmt.Errorf("sha256twin: resume crypto/sha256: %w", err))
	}
	return d
}

// clone copies a crypto/sha256 hash.
func clone(d hash.Hash) hash.Hash {
	b, err := d.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err)
	}
	c := sha256.New()
	if err := c.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		panic(err)
	}
	return c
}

// state is a SHA-256 state as the SHA extensions hold it: words 0-3 are the register
// ABEF (lanes F, E, B, A from low to high), words 4-7 are CDGH (H, G, D, C).
type state [8]uint32

func toState(w [8]uint32) state {
	a, b, c, d, e, f, g, hh := w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
	return state{f, e, b, a, hh, g, d, c}
}

func fromState(s state) [8]uint32 {
	f, e, b, a, hh, g, d, c := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
	return [8]uint32{a, b, c, d, e, f, g, hh}
}
