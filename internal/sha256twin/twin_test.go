package sha256twin

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// paths runs f with the SHA-extension path (where the CPU has it) and with the fallback.
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := haveSHA
	t.Cleanup(func() { haveSHA = saved })
	if saved {
		t.Run("sha-ni", f)
	} else {
		t.Log("this CPU has no SHA extensions: only the fallback is tested")
	}
	haveSHA = false
	t.Run("fallback", f)
	haveSHA = saved
}

func TestHasSHAExtensionsWhereExpected(t *testing.T) {
	// The machines this project runs on are amd64 with SHA-NI; say so if that changes, as
	// the interleaved path would go untested.
	if !haveSHA {
		t.Log("no SHA extensions detected")
	}
}

// check hashes data written in the given pieces and compares both digests, and the digest
// of prefix+data+suffix, with crypto/sha256.
func check(t *testing.T, prefix, data []byte, cuts []int, suffix []byte) {
	t.Helper()
	h, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	prev := 0
	for _, c := range append(cuts, len(data)) {
		if c < prev || c > len(data) {
			continue
		}
		if n, _ := h.Write(data[prev:c]); n != c-prev {
			t.Fatalf("Write returned %d, want %d", n, c-prev)
		}
		prev = c
	}
	want := sha256.Sum256(data)
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("plain digest of %d bytes (cuts %v): %x, want %x", len(data), cuts, got, want)
	}
	whole := append(append(append([]byte{}, prefix...), data...), suffix...)
	wantP := sha256.Sum256(whole)
	p := h.Prefixed()
	p.Write(suffix)
	if got := p.Sum(nil); !bytes.Equal(got, wantP[:]) {
		t.Fatalf("prefixed digest (prefix %d, data %d, suffix %d, cuts %v): %x, want %x", len(prefix), len(data), len(suffix), cuts, got, wantP)
	}
	// Taking the digests does not disturb h: more data goes on from where it was.
	h.Write([]byte("more"))
	want = sha256.Sum256(append(append([]byte{}, data...), "more"...))
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("digest after the sums and 4 more bytes: %x, want %x", got, want)
	}
}

func TestDigestsMatchCryptoSHA256(t *testing.T) {
	paths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		data := make([]byte, 1<<16+123)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		prefixes := [][]byte{nil, bytes.Repeat([]byte{'t'}, 64), data[:512], data[1000:2024]}
		for _, prefix := range prefixes {
			for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 119, 127, 128, 129, 1000, 4096, 1<<16 + 123} {
				check(t, prefix, data[:n], nil, nil)
				check(t, prefix, data[:n], nil, make([]byte, 1536-n%512))
				cuts := []int{rng.IntN(n + 1), rng.IntN(n + 1), rng.IntN(n + 1)}
				if cuts[0] > cuts[1] {
					cuts[0], cuts[1] = cuts[1], cuts[0]
				}
				if cuts[1] > cuts[2] {
					cuts[1], cuts[2] = cuts[2], cuts[1]
				}
				check(t, prefix, data[:n], cuts, []byte("x"))
			}
		}
		// Byte by byte, then in odd pieces.
		check(t, data[:64], data[:300], func() []int {
			c := make([]int, 300)
			for i := range c {
				c[i] = i
			}
			return c
		}(), nil)
	})
}

func TestReset(t *testing.T) {
	paths(t, func(t *testing.T) {
		h, _ := New(make([]byte, 512))
		h.Write([]byte("something else"))
		h.Reset()
		check2 := sha256.Sum256([]byte("abc"))
		h.Write([]byte("abc"))
		if got := h.Sum(nil); !bytes.Equal(got, check2[:]) {
			t.Fatalf("after Reset: %x, want %x", got, check2)
		}
	})
}

func TestUnalignedPrefixRefused(t *testing.T) {
	for _, n := range []int{1, 63, 65, 511} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New with a %d-byte prefix: no error", n)
		}
	}
}

func FuzzTwin(f *testing.F) {
	f.Add([]byte("hello"), uint16(3), uint8(1), []byte{0})
	f.Add(bytes.Repeat([]byte{0xff}, 200), uint16(64), uint8(8), []byte("suffix"))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, prefixBlocks uint8, suffix []byte) {
		prefix := bytes.Repeat([]byte{prefixBlocks}, 64*int(prefixBlocks%16))
		c := int(cut)
		if c > len(data) {
			c = len(data)
		}
		paths(t, func(t *testing.T) { check(t, prefix, data, []int{c}, suffix) })
	})
}

var benchData = make([]byte, 1<<20)

func BenchmarkTwin(b *testing.B) {
	h, _ := New(make([]byte, 512))
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		h.Write(benchData)
	}
}

// BenchmarkTwoSHA256 is the reference: the two digests as two crypto/sha256 passes.
func BenchmarkTwoSHA256(b *testing.B) {
	x, y := sha256.New(), sha256.New()
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		x.Write(benchData)
		y.Write(benchData)
	}
}

func BenchmarkOneSHA256(b *testing.B) {
	x := sha256.New()
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		x.Write(benchData)
	}
}
