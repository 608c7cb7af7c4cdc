package diskformat

import (
	"bytes"
	"slices"
	"testing"
)

// Fuzz targets, one per parser plus one over the whole inspector. Each
// lays its input out as an image (forcing the format's magic, so that the
// fuzzer explores the parser rather than the probe) and checks, through
// inspectAllWays, that nothing panics, that memory stays bounded, that the
// verdict is well-formed, and that it does not depend on how the stream is
// cut or on whether it is read as a stream or through InspectReaderAt.
// Seeds: the builders of seeds_test.go here, and headers of real qemu-img
// images in testdata/fuzz (see TestWriteFuzzSeeds). For short runs, cap
// minimization, or it takes most of the time:
//
//	go test ./diskformat/ -run '^$' -fuzz '^FuzzVHDX$' -fuzztime=20s -fuzzminimizetime=2s

var knownFormats = []string{Raw, QCOW2, VHD, VHDX, VMDK, VDI, QED, ISO, LUKS, GPT}

// inspectAllWays inspects img with one Write, in chunks of chunk bytes and
// through InspectReaderAt, and checks the three reports.
func inspectAllWays(t *testing.T, img []byte, chunk int) Report {
	t.Helper()
	one := NewInspector()
	one.Write(img)
	r := one.Report()
	chunked := NewInspector()
	for p := img; len(p) > 0; p = p[min(chunk, len(p)):] {
		chunked.Write(p[:min(chunk, len(p))])
	}
	byChunks := chunked.Report()
	byReaderAt, err := InspectReaderAt(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if r != byChunks || r != byReaderAt {
		t.Fatalf("reports differ:\none write %+v\nchunks %d %+v\nReaderAt  %+v", r, chunk, byChunks, byReaderAt)
	}
	checkReport(t, r)
	if one.held > maxHeld || chunked.held > maxHeld || len(one.head) > headSize {
		t.Fatalf("holds %d bytes of regions and %d of head", one.held, len(one.head))
	}
	return r
}

func checkReport(t *testing.T, r Report) {
	t.Helper()
	if !slices.Contains(knownFormats, r.Format) || r.VirtualSize < 0 || r.Safe != (r.Reason == "") {
		t.Fatalf("malformed report %+v", r)
	}
}

// image pads data with zeros to at least n bytes and writes magic at off.
func image(data []byte, n int, off int, magic []byte) []byte {
	img := make([]byte, max(len(data), n, off+len(magic)))
	copy(img, data)
	copy(img[off:], magic)
	return img
}

func expectFormat(t *testing.T, r Report, format string) {
	t.Helper()
	if r.Format != format {
		t.Fatalf("format %s, want %s: %+v", r.Format, format, r)
	}
}

func FuzzInspect(f *testing.F) {
	sparseHead, sparseTail := seedVMDK("monolithicSparse", false)
	iso := image(isoDescriptors(100), 0, 0, nil)
	for _, s := range [][]byte{
		seedQcow2(), seedQED(), seedVHD(), append(sparseHead, sparseTail...), seedVDI(), seedLUKS(),
		append(make([]byte, isoFirstSector*isoSectorLen), iso...), seedGPT(), []byte(hostDescriptor),
		mbrSector(mbrPart{boot: 0x80, kind: 0x83, start: 2048, size: 4096}),
	} {
		f.Add(s, uint16(511))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		inspectAllWays(t, data, int(chunk)+1)
	})
}

func FuzzQcow2(f *testing.F) {
	f.Add(seedQcow2())
	f.Add(qcow2HeaderBytes(1 << 45))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := inspectAllWays(t, image(data, headSize, 0, qcow2Magic), 4093)
		expectFormat(t, r, QCOW2)
	})
}

func FuzzQED(f *testing.F) {
	f.Add(seedQED())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := inspectAllWays(t, image(data, 4096, 0, qedMagic), 509)
		expectFormat(t, r, QED)
		if r.Safe {
			t.Fatal("QED passed")
		}
	})
}

func FuzzVHD(f *testing.F) {
	f.Add(seedVHD())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := inspectAllWays(t, image(data, headSize, 0, vhdMagic), 4093)
		expectFormat(t, r, VHD)
	})
}

func FuzzVHDX(f *testing.F) {
	f.Add(seedVHDX(), true)
	f.Add(seedVHDX(), false)
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		r := inspectAllWays(t, vhdxFromFuzz(data, fixCRC), 65521)
		expectFormat(t, r, VHDX)
	})
}

func FuzzVMDK(f *testing.F) {
	for _, kind := range []string{"monolithicSparse", "streamOptimized", "monolithicFlat"} {
		for _, footer := range []bool{false, true} {
			head, tail := seedVMDK(kind, footer)
			f.Add(head, tail)
		}
	}
	f.Add([]byte(hostDescriptor), []byte(nil))
	f.Add([]byte("# Disk DescriptorFile\nversion=1\ncreateType=\"vmfs\"\nRW 10 VMFS \"x\"\n"), []byte(nil))
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		img := append(image(head, headSize, 0, nil), tail...)
		r := inspectAllWays(t, img, 4093)
		if bytes.HasPrefix(head, vmdkMagic) {
			expectFormat(t, r, VMDK)
		}
	})
}

func FuzzVDI(f *testing.F) {
	f.Add(seedVDI())
	f.Fuzz(func(t *testing.T, data []byte) {
		sig := u32le(vdiSignature)
		r := inspectAllWays(t, image(data, 4096, vdiSigOff, sig), 511)
		if r.Format != VDI && r.Safe {
			t.Fatalf("VDI signature, yet %+v", r)
		}
	})
}

func FuzzLUKS(f *testing.F) {
	f.Add(seedLUKS())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := inspectAllWays(t, image(data, headSize, 0, luksMagic), 4093)
		expectFormat(t, r, LUKS)
	})
}

func FuzzISO(f *testing.F) {
	f.Add(isoDescriptors(100))
	f.Add(append(isoDescriptors(100), isoDescriptors(7)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		img := image(append(make([]byte, isoFirstSector*isoSectorLen), data...), 34<<10, 0, nil)
		inspectAllWays(t, img, 2039)
	})
}

func FuzzGPT(f *testing.F) {
	f.Add(seedGPT(), uint16(2048), true)
	f.Add(mbrSector(mbrPart{kind: 0x83, start: 1, size: 100}, mbrPart{kind: 0x07, start: 50, size: 10}), uint16(200), false)
	f.Fuzz(func(t *testing.T, data []byte, sectors uint16, fixCRC bool) {
		// Disks up to 2 MiB: enough for every structure, small enough to
		// keep the fuzzer fast.
		img := image(data, int(sectors%4096)*512, 510, []byte{0x55, 0xAA})
		if fixCRC {
			fixGPT(img)
		}
		inspectAllWays(t, img, 4093)
	})
}
