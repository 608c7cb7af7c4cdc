package diskformat

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var writeSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite testdata/fuzz from qemu-img images")

// TestWriteFuzzSeeds regenerates the fuzz seeds taken from real qemu-img
// images (go test -run TestWriteFuzzSeeds -write-fuzz-seeds). They are
// checked in, so fuzzing needs no qemu-img; go test runs them as tests.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-fuzz-seeds to regenerate testdata/fuzz")
	}
	for _, c := range qemuCases() {
		if c.format == ISO {
			continue
		}
		path := c.make(t, t.TempDir())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		writeSeedsOf(t, c.name, c.format, b)
	}
}

// writeSeedsOf writes a format's seed in its fuzz target's layout, and its
// head as a seed of FuzzInspect.
func writeSeedsOf(t *testing.T, name, format string, b []byte) {
	head := trimZeros(b[:min(len(b), 4<<10)])
	writeSeed(t, "FuzzInspect", name, head, uint16(4095))
	switch format {
	case QCOW2:
		writeSeed(t, "FuzzQcow2", name, head)
	case QED:
		writeSeed(t, "FuzzQED", name, head)
	case VHD:
		writeSeed(t, "FuzzVHD", name, head)
	case VDI:
		writeSeed(t, "FuzzVDI", name, head)
	case LUKS:
		writeSeed(t, "FuzzLUKS", name, luksSeedFrom(b))
	case VMDK:
		writeSeed(t, "FuzzVMDK", name, head, vmdkTailOf(b))
	case VHDX:
		writeSeed(t, "FuzzVHDX", name, vhdxSeedFrom(t, b), true)
	}
}

func trimZeros(b []byte) []byte { return bytes.TrimRight(b, "\x00") }

// luksSeedFrom keeps qemu's header but moves the payload to sector 120, so
// that it fits the fuzz target's 64 KiB image.
func luksSeedFrom(b []byte) []byte {
	h := bytes.Clone(b[:luksHeaderLen])
	copy(h[luksPayloadOff:], u32be(120))
	return h
}

// vmdkTailOf returns the footer region of a VMDK that has one.
func vmdkTailOf(b []byte) []byte {
	if len(b) < tailSize || !bytes.HasPrefix(b, vmdkMagic) {
		return nil
	}
	return trimZeros(b[len(b)-tailSize:])
}

// vhdxSeedFrom extracts qemu's header, region table, metadata table and
// items into the FuzzVHDX layout, moving the metadata region to 1 MiB.
func vhdxSeedFrom(t *testing.T, b []byte) []byte {
	off, err := parseVHDXRegionTable(b[vhdxRegionTableOff : vhdxRegionTableOff+vhdxTableLen])
	if err != nil {
		t.Fatal(err)
	}
	region := bytes.Clone(b[vhdxRegionTableOff : vhdxRegionTableOff+512])
	for i := 16; i+32 <= len(region); i += 32 {
		if [16]byte(region[i:i+16]) == vhdxMetaRegion {
			copy(region[i+16:], u64le(fuzzVHDXMeta))
		}
	}
	seed := append(bytes.Clone(b[vhdxHeaderOff:vhdxHeaderOff+512]), region...)
	seed = append(seed, b[off:off+512]...)
	return append(seed, b[off+vhdxTableLen:off+vhdxTableLen+16]...)
}

// writeSeed writes one seed file in the fuzzing engine's corpus format.
func writeSeed(t *testing.T, target, name string, args ...any) {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		default:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		}
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "qemu-"+name), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
