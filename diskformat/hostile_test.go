package diskformat

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Hand-made hostile images for TestCorpus: polyglots, descriptors that
// reach for host files, truncated headers, absurd sizes, header fields that
// overflow, broken partition tables. Each starts from a real qemu-img image
// where one exists, so that only the attack differs.

// patched returns a maker that creates an image with qemu-img and patches it.
func patched(name string, create []string, patch func(t *testing.T, path string)) func(*testing.T, string) string {
	return func(t *testing.T, dir string) string {
		path := created(name, create...)(t, dir)
		patch(t, path)
		return path
	}
}

// truncatedTo returns a maker that creates an image and keeps n bytes.
func truncatedTo(name string, n int64, create ...string) func(*testing.T, string) string {
	return patched(name, create, func(t *testing.T, path string) {
		if err := os.Truncate(path, n); err != nil {
			t.Fatal(err)
		}
	})
}

// at returns a patch writing data at off.
func at(off int64, data []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) { patchFile(t, path, piece{off, data}) }
}

var (
	qcow2G = []string{"-f", "qcow2", "i.qcow2", "1G"}
	vmdkG  = []string{"-f", "vmdk", "i.vmdk", "1G"}
	vhdxG  = []string{"-f", "vhdx", "i.vhdx", "1G"}
	vhdG   = []string{"-f", "vpc", "i.vhd", "1G"}
	vdiG   = []string{"-f", "vdi", "i.vdi", "1G"}
	// luksM uses sha512 because qemu-img's PBKDF2 benchmark fails at random
	// ("Unable to get accurate CPU usage") when sha256 is too fast.
	luksM = []string{"-f", "luks", "--object", "secret,id=s0,data=xloud",
		"-o", "key-secret=s0,hash-alg=sha512,iter-time=10", "i.luks", "16M"}
)

func hostileCases() []corpusCase {
	cases := polyglotCases()
	cases = append(cases, vmdkHostileCases()...)
	cases = append(cases, truncatedCases()...)
	cases = append(cases, overflowCases()...)
	cases = append(cases, differencingCases()...)
	return append(cases, partitionCases()...)
}

func polyglotCases() []corpusCase {
	return []corpusCase{
		{name: "polyglot-qcow2-iso", make: patched("i.qcow2", qcow2G, at(isoFirstSector*isoSectorLen, isoDescriptors(1000))),
			format: QCOW2, reason: "multiple formats detected: iso,qcow2", qemu: "qcow2"},
		{name: "polyglot-qcow2-mbr", make: patched("i.qcow2", qcow2G, at(510, []byte{0x55, 0xAA})),
			format: QCOW2, reason: "multiple formats detected: gpt,qcow2", qemu: "qcow2"},
		{name: "polyglot-vmdk-iso", make: patched("i.vmdk", vmdkG, at(isoFirstSector*isoSectorLen, isoDescriptors(1000))),
			format: VMDK, reason: "multiple formats detected: iso,vmdk", qemu: "vmdk"},
		{name: "iso-hybrid-protective-mbr", make: func(t *testing.T, dir string) string {
			return sparseFile(t, dir, "i.iso", 2048*isoSectorLen, piece{0, protectiveMBR(8192)}, isoPiece(2048))
		}, format: ISO, safe: true, qemu: "raw"},
		{name: "iso-hybrid-gpt", make: func(t *testing.T, dir string) string {
			return sparseFile(t, dir, "i.iso", 2048*isoSectorLen, append(gptPieces(8192, gptPart{64, 8000}), isoPiece(2048))...)
		}, format: ISO, safe: true, qemu: "raw"},
		{name: "iso-hybrid-dos-mbr", make: func(t *testing.T, dir string) string {
			mbr := mbrSector(mbrPart{boot: 0x80, kind: 0x17, start: 0, size: 8192})
			return sparseFile(t, dir, "i.iso", 2048*isoSectorLen, piece{0, mbr}, isoPiece(2048))
		}, format: ISO, safe: true, qemu: "raw"},
	}
}

// hostDescriptor is the CVE-2022-47951 descriptor: a flat extent that is a
// host file. qemu-img opens it; run on an upload, it reads the host's file.
const hostDescriptor = `# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 8 FLAT "/etc/passwd" 0

ddb.adapterType = "ide"
`

func vmdkHostileCases() []corpusCase {
	return []corpusCase{
		{name: "vmdk-descriptor-host-file", make: func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "i.vmdk")
			if err := os.WriteFile(path, []byte(hostDescriptor), 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}, format: VMDK, reason: `extent names a file outside the image`, qemu: "vmdk"},
		{name: "vmdk-embedded-extent-host-file", make: patched("i.vmdk", vmdkG, replaceDescriptor(`"i.vmdk"`, `"/etc/passwd"`)),
			format: VMDK, reason: "outside the image", qemu: "vmdk"},
		{name: "vmdk-parent", make: vmdkWithParent,
			format: VMDK, reason: "parent", qemu: "vmdk"},
		{name: "vmdk-createType-twice", make: patched("i.vmdk", vmdkG,
			replaceDescriptor("# Extent description", `createType="monolithicFlat"`)),
			format: VMDK, reason: "createType given more than once", qemu: "vmdk"},
		{name: "vmdk-descriptor-garbage-line", make: patched("i.vmdk", vmdkG,
			replaceDescriptor("# Extent description", "!include /etc/shadow")),
			format: VMDK, reason: "invalid descriptor line", qemu: "vmdk"},
		{name: "vmdk-descriptor-elsewhere", make: patched("i.vmdk", vmdkG, at(28, u64le(3))),
			format: VMDK, reason: "descriptor at sector 3", qemu: "vmdk"},
		{name: "vmdk-footer-mismatch", make: func(t *testing.T, dir string) string {
			path := vmdkWithFooter(t, dir)
			st, _ := os.Stat(path)
			patchFile(t, path, piece{st.Size() - 1024 + 12, u64le(1 << 30)})
			return path
		}, format: VMDK, reason: "disagree on the capacity", qemu: "vmdk"},
		{name: "vmdk-footer-missing", make: patched("i.vmdk", vmdkG, at(56, u64le(vmdkGDAtEnd))),
			format: VMDK, reason: "footer marker invalid", size: 0},
	}
}

// replaceDescriptor patches the embedded descriptor of a sparse VMDK,
// keeping its length so the rest of the file stays where it was.
func replaceDescriptor(old, repl string) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		desc := readAt(t, path, 512, 20*512)
		text := bytes.Replace(desc, []byte(old), []byte(repl), 1)
		if bytes.Equal(text, desc) {
			t.Fatalf("descriptor has no %q", old)
		}
		patchFile(t, path, piece{512, text[:len(desc)]})
	}
}

// vmdkWithParent makes a monolithicSparse image whose descriptor names a
// parent; qemu opens it as the backing file. Glance's checks let it pass.
func vmdkWithParent(t *testing.T, dir string) string {
	qemuImg(t, dir, "create", "-q", "-f", "vmdk", "base.vmdk", "1G")
	path := created("i.vmdk", vmdkG...)(t, dir)
	replaceDescriptor("parentCID=ffffffff", "parentCID=12345678\nparentFileNameHint=\"base.vmdk\"")(t, path)
	return path
}

func truncatedCases() []corpusCase {
	return []corpusCase{
		{name: "qcow2-truncated-header", make: truncatedTo("i.qcow2", 48, qcow2G...),
			format: QCOW2, reason: "truncated header", size: 1 << 30},
		{name: "vmdk-truncated-descriptor", make: truncatedTo("i.vmdk", 1024, vmdkG...),
			format: VMDK, reason: "descriptor missing", size: 1 << 30},
		{name: "vmdk-truncated-header", make: truncatedTo("i.vmdk", 40, vmdkG...),
			format: VMDK, reason: "truncated header"},
		{name: "vhdx-truncated", make: truncatedTo("i.vhdx", 100<<10, vhdxG...),
			format: VHDX, reason: "metadata not found"},
		{name: "vhdx-truncated-metadata", make: truncatedTo("i.vhdx", 3<<20+100, vhdxG...),
			format: VHDX, reason: "metadata not found"},
		{name: "vhd-truncated", make: truncatedTo("i.vhd", 300, vhdG...),
			format: VHD, reason: "truncated footer"},
		{name: "vdi-truncated", make: truncatedTo("i.vdi", 256, vdiG...),
			format: VDI, reason: "truncated header"},
		{name: "luks-truncated", make: truncatedTo("i.luks", 100, luksM...),
			format: LUKS, reason: "truncated header"},
		{name: "empty", make: func(t *testing.T, dir string) string { return sparseFile(t, dir, "i.raw", 0) },
			format: Raw, safe: true, qemu: "raw"},
		{name: "text-is-raw", make: func(t *testing.T, dir string) string {
			return sparseFile(t, dir, "README", 0, piece{0, []byte("An image service.\nNothing to see.\n")})
		}, format: Raw, safe: true, qemu: "raw"},
	}
}

func overflowCases() []corpusCase {
	return []corpusCase{
		{name: "qcow2-absurd-size", make: patched("i.qcow2", qcow2G, at(24, u64be(1<<62))),
			format: QCOW2, reason: "too large for 65536-byte clusters", size: 1 << 62},
		{name: "qcow2-l1-too-small", make: patched("i.qcow2", qcow2G, at(24, u64be(1<<45))),
			format: QCOW2, reason: "L1 table of 2 entries cannot map", size: 1 << 45},
		{name: "qcow2-size-overflows-int64", make: patched("i.qcow2", qcow2G, at(24, u64be(1<<63+5))),
			format: QCOW2, reason: "overflows"},
		{name: "qcow2-cluster-bits-out-of-range", make: patched("i.qcow2", qcow2G, at(20, u32be(40))),
			format: QCOW2, reason: "cluster_bits 40 out of range", size: 1 << 30},
		{name: "qcow2-l1-size-overflow", make: patched("i.qcow2", qcow2G, at(36, u32be(0xffffffff))),
			format: QCOW2, reason: "L1 table too large", size: 1 << 30},
		{name: "qcow2-l1-offset-overflow", make: patched("i.qcow2", qcow2G, at(40, u64be(1<<63-4096))),
			format: QCOW2, reason: "L1 table offset", size: 1 << 30},
		{name: "qcow2-refcount-table-overflow", make: patched("i.qcow2", qcow2G, at(56, u32be(0xffffffff))),
			format: QCOW2, reason: "refcount table too large", size: 1 << 30},
		{name: "qcow2-header-length-overflow", make: patched("i.qcow2", qcow2G, at(100, u32be(0xffffffff))),
			format: QCOW2, reason: "header_length", size: 1 << 30},
		{name: "qcow2-unknown-incompatible-feature", make: patched("i.qcow2", qcow2G, at(72, u64be(1<<20))),
			format: QCOW2, reason: "unknown incompatible features 0x100000", size: 1 << 30},
		{name: "qcow-version-1", make: patched("i.qcow2", qcow2G, at(4, u32be(1))),
			format: QCOW2, reason: "unsupported qcow2 version 1", size: 1 << 30},
		{name: "vmdk-absurd-capacity", make: patched("i.vmdk", vmdkG, at(12, u64le(1<<50))),
			format: VMDK, reason: "too large a grain directory", qemu: "vmdk"},
		{name: "vmdk-capacity-overflows", make: patched("i.vmdk", vmdkG, at(12, u64le(1<<62))),
			format: VMDK, reason: "overflows"},
		{name: "vmdk-grain-out-of-range", make: patched("i.vmdk", vmdkG, at(20, u64le(1<<40))),
			format: VMDK, reason: "grain", size: 1 << 30},
		{name: "vdi-absurd-size", make: patched("i.vdi", vdiG, at(0x170, u64le(1<<60))),
			format: VDI, reason: "exceeds"},
		{name: "vdi-size-beyond-block-map", make: patched("i.vdi", vdiG, at(0x170, u64le(4<<30))),
			format: VDI, reason: "does not cover the disk", size: 4 << 30},
		{name: "vhdx-absurd-size", make: patched("i.vhdx", vhdxG, at(3<<20+65544, u64le(1<<60))),
			format: VHDX, reason: "exceeds 64 TiB"},
		{name: "vhdx-region-count-overflow", make: patched("i.vhdx", vhdxG, vhdxRegionTablePatch(8, u32le(0xffffffff))),
			format: VHDX, reason: "region table has 4294967295 entries"},
		{name: "vhd-absurd-size", make: patched("i.vhd", vhdG, vhdFooterPatch(piece{28, []byte("qem2")}, piece{48, u64be(1 << 50)})),
			format: VHD, reason: "exceeds qemu's 2040 GiB limit"},
		{name: "luks-payload-past-end", make: patched("i.luks", luksM, at(104, u32be(0x7fffffff))),
			format: LUKS, reason: "payload offset 1099511627264 past the end"},
	}
}

// vhdxRegionTablePatch patches the region table and fixes its checksum, so
// that only the field under test is wrong.
func vhdxRegionTablePatch(off int, data []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		table := readAt(t, path, vhdxRegionTableOff, vhdxTableLen)
		copy(table[off:], data)
		setCRC32C(table)
		patchFile(t, path, piece{vhdxRegionTableOff, table})
	}
}

// vhdFooterPatch patches both copies of a dynamic VHD's footer and fixes
// their checksum.
func vhdFooterPatch(fields ...piece) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		footer := readAt(t, path, 0, vhdFooterLen)
		for _, f := range fields {
			copy(footer[f.off:], f.data)
		}
		copy(footer[64:], vhdChecksum(footer))
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		patchFile(t, path, piece{0, footer}, piece{st.Size() - vhdFooterLen, footer})
	}
}

func differencingCases() []corpusCase {
	return []corpusCase{
		{name: "vhd-differencing", make: patched("i.vhd", vhdG, vhdFooterPatch(piece{60, u32be(vhdDifferencing)})),
			format: VHD, reason: "differencing VHD", qemu: "vpc"},
		{name: "vhdx-has-parent", make: patched("i.vhdx", vhdxG, at(3<<20+65536+4, u32le(vhdxHasParent))),
			format: VHDX, reason: "differencing VHDX", size: 1 << 30},
		{name: "vhdx-log-to-replay", make: patched("i.vhdx", vhdxG, vhdxWithLog),
			format: VHDX, reason: "log has entries to replay", qemu: "vhdx"},
		{name: "vdi-differencing", make: patched("i.vdi", vdiG, at(0x4c, u32le(4))),
			format: VDI, reason: "refers to a parent image", qemu: "vdi"},
		{name: "vdi-parent-uuid", make: patched("i.vdi", vdiG, at(vdiUUIDParentOff, bytes.Repeat([]byte{7}, 16))),
			format: VDI, reason: "links to a parent image", size: 1 << 30},
	}
}

// vhdxWithLog points both headers at a log holding one entry of the current
// log GUID. qemu checks entries more closely and finds nothing to replay;
// we cannot, in one pass, so we refuse any entry of the current log.
func vhdxWithLog(t *testing.T, path string) {
	guid := bytes.Repeat([]byte{0x42}, 16)
	for _, off := range []int64{vhdxHeaderOff, vhdxHeaderOff2} {
		h := readAt(t, path, off, vhdxHeaderLen)
		copy(h[48:], guid)
		setCRC32C(h)
		patchFile(t, path, piece{off, h})
	}
	h := readAt(t, path, vhdxHeaderOff, vhdxHeaderLen)
	entry := make([]byte, vhdxLogEntryLen)
	copy(entry, vhdxLogEntrySig)
	copy(entry[32:], guid)
	patchFile(t, path, piece{int64(binary.LittleEndian.Uint64(h[72:])), entry})
}

func partitionCases() []corpusCase {
	const size = 16 << 20
	const sectors = size / 512
	disk := func(pieces ...piece) func(*testing.T, string) string {
		return func(t *testing.T, dir string) string { return sparseFile(t, dir, "i.raw", size, pieces...) }
	}
	mbr := func(parts ...mbrPart) piece { return piece{0, mbrSector(parts...)} }
	badCRC := gptPieces(sectors, gptPart{2048, 30000})
	badCRC[1].data[60] ^= 1 // the disk GUID, inside the CRC'd header
	return []corpusCase{
		{name: "mbr-dos", make: disk(mbr(mbrPart{boot: 0x80, kind: 0x83, start: 2048, size: sectors - 2048})),
			format: GPT, safe: true, qemu: "raw"},
		{name: "gpt", make: disk(gptPieces(sectors, gptPart{2048, 16383}, gptPart{16384, sectors - 34})...),
			format: GPT, safe: true, qemu: "raw"},
		{name: "gpt-bad-header-crc", make: disk(badCRC...),
			format: GPT, reason: "GPT header CRC mismatch", qemu: "raw"},
		{name: "gpt-overlapping-partitions", make: disk(gptPieces(sectors, gptPart{2048, 20000}, gptPart{16384, 30000})...),
			format: GPT, reason: "GPT partitions overlap", qemu: "raw"},
		{name: "gpt-past-the-end", make: disk(gptPieces(sectors*4, gptPart{2048, 30000})...),
			format: GPT, reason: "GPT extends past the end", qemu: "raw"},
		{name: "mbr-overlapping-partitions", make: disk(mbr(
			mbrPart{kind: 0x83, start: 2048, size: 10000}, mbrPart{kind: 0x83, start: 8000, size: 10000})),
			format: GPT, reason: "partitions 0 and 1 overlap", qemu: "raw"},
		{name: "mbr-partition-past-the-end", make: disk(mbr(mbrPart{kind: 0x83, start: 2048, size: sectors})),
			format: GPT, reason: "partition 0 extends past the end", qemu: "raw"},
		{name: "mbr-partition-over-the-mbr", make: disk(mbr(mbrPart{kind: 0x83, start: 0, size: 2048})),
			format: GPT, reason: "partition 0 overlaps the MBR", qemu: "raw"},
		{name: "mbr-protective-plus-extra", make: disk(mbr(
			mbrPart{kind: mbrProtective, chs: [3]byte{0, 2, 0}, start: 1, size: sectors - 1},
			mbrPart{kind: 0x83, start: 2048, size: 2048})),
			format: GPT, reason: "invalid extra partitions", qemu: "raw"},
		{name: "mbr-bad-boot-flag", make: disk(mbr(mbrPart{boot: 0x81, kind: 0x83, start: 2048, size: 2048})),
			format: GPT, reason: "invalid boot flag", qemu: "raw"},
		{name: "mbr-no-partitions", make: disk(mbr()),
			format: GPT, reason: "no partitions defined", qemu: "raw"},
	}
}
