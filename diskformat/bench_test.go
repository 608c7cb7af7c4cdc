package diskformat

import (
	"crypto/sha256"
	"hash"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The benchmarks stream 1 GiB, in 32 KiB writes (io.Copy's buffer), to a
// SHA-256 hash, with and without an Inspector beside it. The stream starts
// with a streamOptimized VMDK whose header defers to a footer, the costliest
// case: the inspector parses a header and a descriptor, then keeps the tail
// for the whole stream. Run them with -benchtime=1x:
//
//	go test ./diskformat/ -run '^$' -bench . -benchtime=1x
//
// BenchmarkInspectOverhead reports the cost of inspection relative to
// hashing alone, measured in the same run (the target is under 2%).
const (
	benchStreamSize = 1 << 30
	benchWrite      = 32 << 10
	benchSegment    = 4 << 20 // BenchmarkInspectOverhead alternates at this size
)

// benchData returns 1 MiB of random bytes starting with a VMDK header and
// descriptor; the stream repeats it.
func benchData() []byte {
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'x', 'l', 'o', 'u', 'd'}).Read(b)
	head, _ := seedVMDK("streamOptimized", true)
	copy(b, image(head, 21*512, 0, nil)) // header and zero-padded descriptor

	return b
}

// feed writes n bytes of the stream, starting at off, to each writer.
func feed(data []byte, off, n int64, h hash.Hash, in *Inspector) {
	for end := off + n; off < end; off += benchWrite {
		i := int(off % int64(len(data)))
		p := data[i : i+benchWrite]
		h.Write(p)
		if in != nil {
			in.Write(p)
		}
	}
}

func BenchmarkHashOnly(b *testing.B) {
	data := benchData()
	b.SetBytes(benchStreamSize)
	for b.Loop() {
		feed(data, 0, benchStreamSize, sha256.New(), nil)
	}
}

func BenchmarkHashAndInspect(b *testing.B) {
	data := benchData()
	b.SetBytes(benchStreamSize)
	for b.Loop() {
		in := NewInspector()
		feed(data, 0, benchStreamSize, sha256.New(), in)
		if r := in.Report(); r.Format != VMDK || r.Reason != "vmdk: footer marker invalid" {
			b.Fatalf("benchmark stream inspected as %+v", r)
		}
	}
}

// BenchmarkInspectOverhead hashes the 1 GiB stream twice, once alone and
// once with an Inspector, alternating 4 MiB segments of each so that both
// see the same machine state, and reports in the same run:
//   - overhead-%: the median over segments of (hash+inspect)/hash - 1; the
//     median keeps other processes' bursts on a shared machine out of it;
//   - inspect-only-%: the time the Inspector alone takes over the same
//     stream, relative to hashing it, an upper bound of what it adds.
func BenchmarkInspectOverhead(b *testing.B) {
	data := benchData()
	b.SetBytes(2 * benchStreamSize)
	var ratios []float64
	var alone, inspectOnly time.Duration
	for b.Loop() {
		h1, h2, in := sha256.New(), sha256.New(), NewInspector()
		for off := int64(0); off < benchStreamSize; off += benchSegment {
			start := time.Now()
			feed(data, off, benchSegment, h1, nil)
			mid := time.Now()
			feed(data, off, benchSegment, h2, in)
			ratios = append(ratios, float64(time.Since(mid))/float64(mid.Sub(start)))
			alone += mid.Sub(start)
		}
		in.Close()
		inspectOnly += timeInspectOnly(data)
	}
	slices.Sort(ratios)
	b.ReportMetric(100*(ratios[len(ratios)/2]-1), "overhead-%")
	b.ReportMetric(100*float64(inspectOnly)/float64(alone), "inspect-only-%")
}

// timeInspectOnly times an Inspector alone over the stream.
func timeInspectOnly(data []byte) time.Duration {
	in := NewInspector()
	start := time.Now()
	for off := int64(0); off < benchStreamSize; off += benchWrite {
		i := int(off % int64(len(data)))
		in.Write(data[i : i+benchWrite])
	}
	in.Close()
	return time.Since(start)
}
