package diskformat

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

type seedCase struct {
	name   string
	img    []byte
	format string
	safe   bool
	size   int64
	reason string
}

func seedCases() []seedCase {
	sparse := func(kind string, footer bool) []byte {
		head, tail := seedVMDK(kind, footer)
		return append(image(head, headSize, 0, nil), tail...)
	}
	gptDisk := image(seedGPT(), 2048*512, 0, nil)
	return []seedCase{
		{"qcow2", image(seedQcow2(), headSize, 0, nil), QCOW2, true, 1 << 30, ""},
		{"qed", image(seedQED(), 4096, 0, nil), QED, false, 1 << 30, "not allowed"},
		{"vhd", image(seedVHD(), headSize, 0, nil), VHD, true, 130 * 16 * 63 * 512, ""},
		{"vhdx", vhdxFromFuzz(seedVHDX(), true), VHDX, true, 1 << 30, ""},
		{"vhdx-bad-crc", vhdxFromFuzz(seedVHDX(), false), VHDX, false, 0, "no valid header"},
		{"vmdk-sparse", sparse("monolithicSparse", false), VMDK, true, 1 << 30, ""},
		{"vmdk-footer", sparse("streamOptimized", true), VMDK, true, 1 << 30, ""},
		{"vmdk-flat-embedded", sparse("monolithicFlat", false), VMDK, false, 1 << 30, "unsupported subformat"},
		{"vmdk-host-file", []byte(hostDescriptor), VMDK, false, 4096, "outside the image"},
		{"vdi", image(seedVDI(), 4096, 0, nil), VDI, true, 1 << 30, ""},
		{"luks", image(seedLUKS(), headSize+4096, 0, nil), LUKS, true, 4096, ""},
		{"iso", sparseImage(100*isoSectorLen, isoPiece(100)), ISO, true, 100 * isoSectorLen, ""},
		{"iso-descriptors-misplaced", image(isoPiece(100).data, 0, 0, nil), Raw, true, 4096, ""},
		{"gpt", gptDisk, GPT, true, 2048 * 512, ""},
		{"gpt-truncated-array", gptDisk[:2000], GPT, false, 2000, "partition array missing"},
	}
}

func TestSeeds(t *testing.T) {
	for _, c := range seedCases() {
		t.Run(c.name, func(t *testing.T) {
			r := inspectAllWays(t, c.img, 1)
			if r.Format != c.format || r.Safe != c.safe || r.VirtualSize != c.size || !strings.Contains(r.Reason, c.reason) {
				t.Errorf("got %+v, want %s safe=%v size %d reason %q", r, c.format, c.safe, c.size, c.reason)
			}
		})
	}
}

// sparseImage lays pieces out in a zeroed image of size bytes.
func sparseImage(size int, pieces ...piece) []byte {
	b := make([]byte, size)
	for _, p := range pieces {
		copy(b[p.off:], p.data)
	}
	return b
}

func TestTailRing(t *testing.T) {
	r := newTailRing(8)
	var all []byte
	for i, n := range []int{3, 1, 7, 20, 2, 5, 8, 1} {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		r.write(p)
		all = append(all, p...)
		if want := all[max(0, len(all)-8):]; !bytes.Equal(r.bytes(), want) {
			t.Fatalf("after %q: %q, want %q", all, r.bytes(), want)
		}
	}
}

func TestWriteAfterClose(t *testing.T) {
	in := NewInspector()
	in.Write([]byte("abc"))
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := in.Write([]byte("d")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if r := in.Report(); r != (Report{Format: Raw, VirtualSize: 3, Safe: true}) {
		t.Fatalf("report %+v", r)
	}
}

func vmdkFooterHead() []byte {
	head, _ := seedVMDK("streamOptimized", true)
	return head
}

// TestWritePastHeadersIsFree checks the benchmark's premise: once the
// headers are read, a Write only counts bytes (plus the tail, for formats
// with a footer), and never allocates.
func TestWritePastHeadersIsFree(t *testing.T) {
	for _, c := range []struct {
		name string
		head []byte
		tail bool
	}{
		{"raw", make([]byte, headSize), false},
		{"qcow2", image(seedQcow2(), headSize, 0, nil), false},
		{"vmdk-footer", image(vmdkFooterHead(), headSize, 0, nil), true},
	} {
		in := NewInspector()
		in.Write(c.head)
		if in.busy || (in.tail != nil) != c.tail {
			t.Errorf("%s: busy %v, tail %v after the headers", c.name, in.busy, in.tail != nil)
		}
		chunk := make([]byte, 32<<10)
		if n := testing.AllocsPerRun(100, func() { in.Write(chunk) }); n != 0 {
			t.Errorf("%s: Write allocates %v times", c.name, n)
		}
	}
}

// TestRegionBudget checks that however many regions headers ask for, the
// inspector holds at most maxHeld bytes, and drops what does not fit.
func TestRegionBudget(t *testing.T) {
	in := NewInspector()
	in.Write(make([]byte, headSize))
	delivered := 0
	for i := range 100 {
		in.capture(int64(headSize+i*maxRegion), maxRegion, 0, func([]byte) { delivered++ })
	}
	in.capture(headSize, maxRegion+1, 0, func([]byte) { t.Error("oversized region delivered") })
	in.capture(-1, 10, 0, func([]byte) { t.Error("negative offset delivered") })
	if in.held > maxHeld || len(in.regions) != maxHeld/maxRegion {
		t.Fatalf("held %d in %d regions", in.held, len(in.regions))
	}
	in.Close()
	if delivered != maxHeld/maxRegion {
		t.Fatalf("%d regions delivered", delivered)
	}
}

// TestRegionsBehindTheHorizon checks that a region asked for after its
// bytes went past is dropped, whatever the chunking, so that verdicts never
// depend on how the stream was cut.
func TestRegionsBehindTheHorizon(t *testing.T) {
	for _, chunk := range []int{1, 1000, 1 << 20} {
		in := NewInspector()
		in.Write(make([]byte, headSize))
		var late, inHead bool
		in.capture(headSize+100, 10, 10, func([]byte) {
			in.capture(headSize+50, 10, 10, func([]byte) { late = true })
			in.capture(10, 10, 10, func([]byte) { inHead = true })
		})
		data := make([]byte, 1<<20)
		for p := data; len(p) > 0; p = p[min(chunk, len(p)):] {
			in.Write(p[:min(chunk, len(p))])
		}
		in.Close()
		if late || !inHead {
			t.Errorf("chunk %d: late region delivered %v, head region %v", chunk, late, inHead)
		}
	}
}

func TestInspectReaderAtSkips(t *testing.T) {
	img := vhdxFromFuzz(seedVHDX(), true)
	img = append(img, make([]byte, 64<<20)...)
	r := &countingReaderAt{r: bytes.NewReader(img)}
	rep, err := InspectReaderAt(r, int64(len(img)))
	if err != nil || rep.Format != VHDX || !rep.Safe {
		t.Fatalf("%+v %v", rep, err)
	}
	if r.n > 4<<20 {
		t.Fatalf("read %d of %d bytes", r.n, len(img))
	}
}

type countingReaderAt struct {
	r io.ReaderAt
	n int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += n
	return n, err
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		declared, detected string
		want               error
	}{
		{"qcow2", QCOW2, nil},
		{"raw", Raw, nil},
		{"raw", GPT, nil},
		{"raw", ISO, nil},
		{"raw", QCOW2, ErrFormatMismatch},
		{"raw", VMDK, ErrFormatMismatch},
		{"vhd", VHD, nil},
		{"vhd", Raw, ErrFormatMismatch},
		{"vhdx", VHDX, nil},
		{"vmdk", VMDK, nil},
		{"vdi", VDI, nil},
		{"iso", ISO, nil},
		{"iso", Raw, ErrFormatMismatch},
		{"ploop", Raw, nil},
		{"aki", GPT, nil},
		{"ari", Raw, nil},
		{"ami", QCOW2, ErrFormatMismatch},
		{"qcow2", QED, ErrFormatMismatch},
		{"qed", QED, ErrUnknownDiskFormat},
		{"bogus", Raw, ErrUnknownDiskFormat},
	} {
		err := Matches(c.declared, Report{Format: c.detected, Safe: true})
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("Matches(%s, %s) = %v, want %v", c.declared, c.detected, err, c.want)
		}
	}
}

func TestVerify(t *testing.T) {
	unsafe := Report{Format: QCOW2, Safe: false, Reason: "qcow2: image has a backing file"}
	if err := Verify("qcow2", unsafe); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "backing file") {
		t.Errorf("unsafe: %v", err)
	}
	if err := Verify("raw", Report{Format: QCOW2, Safe: true}); !errors.Is(err, ErrFormatMismatch) {
		t.Errorf("mismatch: %v", err)
	}
	if err := Verify("qcow2", Report{Format: QCOW2, Safe: true}); err != nil {
		t.Errorf("good: %v", err)
	}
}
