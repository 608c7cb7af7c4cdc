package diskformat

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// Small, valid images of every format, laid out as qemu-img lays them out,
// for the unit tests and as fuzz seeds (next to the seeds taken from real
// qemu-img images under testdata/fuzz).

func seedQcow2() []byte {
	b := qcow2HeaderBytes(1 << 30)
	binary.BigEndian.PutUint64(b[72:], qcow2CompressionType)
	b[104] = 1 // zstd
	return b
}

func seedQED() []byte {
	b := make([]byte, 512)
	copy(b, qedMagic)
	copy(b[4:], u32le(64<<10))
	copy(b[8:], u32le(4))
	copy(b[12:], u32le(1))
	copy(b[40:], u64le(64<<10))
	copy(b[48:], u64le(1<<30))
	return b
}

// seedVHD is a dynamic VHD of 64 MiB: footer copy, dynamic header, BAT.
func seedVHD() []byte {
	b := make([]byte, 2048)
	f := b[:vhdFooterLen]
	copy(f, vhdMagic)
	copy(f[8:], u32be(2))
	copy(f[12:], u32be(0x00010000))
	copy(f[16:], u64be(512))
	copy(f[28:], "qemu")
	copy(f[40:], u64be(64<<20))
	copy(f[48:], u64be(64<<20))
	copy(f[56:], []byte{0x00, 0x82, 0x10, 0x3f}) // 130 cylinders, 16 heads, 63 sectors
	copy(f[60:], u32be(vhdDynamic))
	copy(f[64:], vhdChecksum(f))
	d := b[512:1536]
	copy(d, vhdDynMagic)
	copy(d[8:], u64be(1<<64-1))
	copy(d[16:], u64be(1536))
	copy(d[24:], u32be(0x00010000))
	copy(d[28:], u32be(32))
	copy(d[32:], u32be(2<<20))
	copy(b[1536:], bytes.Repeat([]byte{0xff}, 128))
	return b
}

const seedVMDKDescriptor = `# Disk DescriptorFile
version=1
CID=d1dcd8e8
parentCID=ffffffff
createType="%s"

# Extent description
RW 2097152 SPARSE "i.vmdk"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "2080"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.adapterType = "ide"
`

// seedVMDKHeader is a sparse header of 1 GiB with a 20-sector descriptor.
func seedVMDKHeader(gd uint64) []byte {
	b := make([]byte, 512)
	copy(b, vmdkMagic)
	copy(b[4:], u32le(3))
	copy(b[8:], u32le(0x30003))
	copy(b[12:], u64le(2097152))
	copy(b[20:], u64le(128))
	copy(b[28:], u64le(1))
	copy(b[36:], u64le(20))
	copy(b[44:], u32le(512))
	copy(b[56:], u64le(gd))
	copy(b[64:], u64le(128))
	copy(b[73:], "\n \r\n")
	copy(b[77:], u16le(1))
	return b
}

// seedVMDK returns the head and tail of a sparse VMDK; with a footer, the
// header defers to it.
func seedVMDK(createType string, footer bool) (head, tail []byte) {
	gd := uint64(21)
	if footer {
		gd = vmdkGDAtEnd
	}
	head = make([]byte, 21*512)
	copy(head, seedVMDKHeader(gd))
	copy(head[512:], bytes.Replace([]byte(seedVMDKDescriptor), []byte("%s"), []byte(createType), 1))
	head = bytes.TrimRight(head, "\x00") // the fuzz targets pad it back
	if footer {
		tail = make([]byte, tailSize)
		copy(tail, u64le(1))
		copy(tail[12:], u32le(vmdkMarkerFooter))
		copy(tail[512:], seedVMDKHeader(21))
	}
	return head, tail
}

// VHDX fuzz layout: the input's 512-byte parts become the headers, the
// region table and the metadata table; its last 16 bytes the two items.
const (
	fuzzVHDXMeta  = 1 << 20
	fuzzVHDXItems = fuzzVHDXMeta + vhdxTableLen
	fuzzVHDXSize  = fuzzVHDXItems + 4096
)

func seedVHDX() []byte {
	b := make([]byte, 3*512+16)
	h := b[:512]
	copy(h, vhdxHeaderSig)
	copy(h[8:], u64le(1))
	copy(h[66:], u16le(1))
	copy(h[68:], u32le(1<<20))
	copy(h[72:], u64le(1<<20))
	r := b[512:1024]
	copy(r, vhdxRegionSig)
	copy(r[8:], u32le(2))
	vhdxRegion(r[16:], vhdxBATRegion, 2<<20)
	vhdxRegion(r[48:], vhdxMetaRegion, fuzzVHDXMeta)
	m := b[1024:1536]
	copy(m, vhdxMetadataSig)
	copy(m[10:], u16le(3))
	vhdxItem(m[32:], vhdxFileParams, vhdxTableLen, 4)
	vhdxItem(m[64:], vhdxVirtualSize, vhdxTableLen+8, 6)
	vhdxItem(m[96:], vhdxLogicalSect, vhdxTableLen+16, 6)
	copy(b[1536:], u32le(32<<20))
	copy(b[1544:], u64le(1<<30))
	return b
}

func vhdxRegion(e []byte, guid [16]byte, off uint64) {
	copy(e, guid[:])
	copy(e[16:], u64le(off))
	copy(e[24:], u32le(1<<20))
}

func vhdxItem(e []byte, guid [16]byte, off, flags uint32) {
	copy(e, guid[:])
	copy(e[16:], u32le(off))
	copy(e[20:], u32le(8))
	copy(e[24:], u32le(flags))
}

// vhdxFromFuzz lays a VHDX fuzz input out as an image; with fixCRC, the
// checksums are made right so that the fuzzer gets past them.
func vhdxFromFuzz(data []byte, fixCRC bool) []byte {
	img := make([]byte, fuzzVHDXSize)
	copy(img, vhdxMagic)
	part := func(i, n int) []byte { return data[min(i, len(data)):min(i+n, len(data))] }
	copy(img[vhdxHeaderOff:], part(0, 512))
	copy(img[vhdxHeaderOff2:], part(0, 512))
	copy(img[vhdxRegionTableOff:], part(512, 512))
	copy(img[fuzzVHDXMeta:], part(1024, 512))
	copy(img[fuzzVHDXItems:], part(1536, 16))
	if fixCRC {
		setCRC32C(img[vhdxHeaderOff : vhdxHeaderOff+vhdxHeaderLen])
		setCRC32C(img[vhdxHeaderOff2 : vhdxHeaderOff2+vhdxHeaderLen])
		setCRC32C(img[vhdxRegionTableOff : vhdxRegionTableOff+vhdxTableLen])
	}
	return img
}

func seedVDI() []byte {
	b := make([]byte, 512)
	copy(b, "<<< QEMU VM Virtual Disk Image >>>\n")
	le := binary.LittleEndian
	le.PutUint32(b[0x40:], vdiSignature)
	le.PutUint32(b[0x44:], vdiVersion11)
	le.PutUint32(b[0x48:], 0x190)
	le.PutUint32(b[0x4c:], vdiDynamic)
	le.PutUint32(b[0x154:], 0x200)
	le.PutUint32(b[0x158:], 0x1200)
	le.PutUint32(b[0x168:], vdiSectorSize)
	le.PutUint64(b[0x170:], 1<<30)
	le.PutUint32(b[0x178:], vdiBlockSize)
	le.PutUint32(b[0x180:], 1024)
	b[0x188] = 0x67
	return b
}

// seedLUKS is a LUKS1 header with one active key slot and a 64 KiB payload
// offset, so that a 64 KiB fuzz image holds it.
func seedLUKS() []byte {
	b := make([]byte, luksHeaderLen)
	copy(b, luksMagic)
	copy(b[6:], []byte{0, 1})
	copy(b[8:], "aes")
	copy(b[40:], "xts-plain64")
	copy(b[72:], "sha256")
	copy(b[104:], u32be(128))
	copy(b[108:], u32be(64))
	for i := range luksSlots {
		s := b[luksSlotOff+luksSlotLen*i:]
		copy(s, u32be(luksSlotInactive))
		copy(s[luksSlotKeyOff:], u32be(uint32(8+i*8)))
		copy(s[luksSlotStripesOff:], u32be(4000))
	}
	copy(b[luksSlotOff:], u32be(luksSlotActive))
	return b
}

// seedGPT is the first 17 KiB of a GPT disk of 2048 sectors.
func seedGPT() []byte {
	b := make([]byte, 1024+128*128)
	for _, p := range gptPieces(2048, gptPart{34, 1000}, gptPart{1001, 2014}) {
		copy(b[p.off:], p.data)
	}
	return bytes.TrimRight(b, "\x00") // the fuzz target pads it back
}

// fixGPT makes the CRCs of a GPT header at 512 and its array right, when
// the header's fields let us find them in img.
func fixGPT(img []byte) {
	if len(img) < 1024 {
		return
	}
	h := img[512:1024]
	le := binary.LittleEndian
	lba, n, size := le.Uint64(h[72:]), uint64(le.Uint32(h[80:])), uint64(le.Uint32(h[84:]))
	if off := lba * 512; lba <= uint64(len(img))/512 && n*size <= gptMaxArrayBytes && off+n*size <= uint64(len(img)) {
		le.PutUint32(h[88:], crc32.ChecksumIEEE(img[off:off+n*size]))
	}
	if hs := le.Uint32(h[12:]); hs >= gptHeaderMinLen && hs <= 512 {
		le.PutUint32(h[16:], gptCRC(h[:hs], 16))
	}
}
