package diskformat

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"strings"
)

// VHDX ([MS-VHDX]): little-endian structures found through a chain of
// offsets. The file identifier is at 0, two headers at 64 and 128 KiB, the
// region table at 192 KiB; the table points at the metadata region, whose
// table points at the items we need. Glance only reads the virtual size; we
// also refuse what qemu's block/vhdx.c refuses (bad checksums, unknown
// required regions or items) and what would make qemu read other bytes than
// we did: a parent (differencing disk) or a log still to be replayed.
const (
	vhdxHeaderOff      = 64 << 10
	vhdxHeaderOff2     = 128 << 10
	vhdxHeaderLen      = 4 << 10
	vhdxRegionTableOff = 192 << 10
	vhdxTableLen       = 64 << 10 // region table, and the metadata table
	vhdxMaxEntries     = 2047
	vhdxMaxSize        = 64 << 40 // VHDX_MAX_IMAGE_SIZE
	vhdxMinBlockSize   = 1 << 20
	vhdxMaxBlockSize   = 256 << 20
	vhdxMiB            = 1 << 20
	vhdxHasParent      = 1 << 1 // file parameters flag
	vhdxRequired       = 1 << 2 // metadata entry flag
	vhdxLogEntryLen    = 4 << 10
)

var (
	vhdxMagic        = []byte("vhdxfile")
	vhdxHeaderSig    = []byte("head")
	vhdxRegionSig    = []byte("regi")
	vhdxMetadataSig  = []byte("metadata")
	vhdxLogEntrySig  = []byte("loge")
	crc32c           = crc32.MakeTable(crc32.Castagnoli)
	vhdxBATRegion    = msGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxMetaRegion   = msGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParams   = msGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxVirtualSize  = msGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxPage83       = msGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxLogicalSect  = msGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxPhysicalSect = msGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	vhdxParentLoc    = msGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
)

// msGUID turns a GUID's text form into its on-disk bytes: the first three
// groups little-endian, the rest as written. Only constants pass through it.
func msGUID(s string) (g [16]byte) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("diskformat: bad GUID constant " + s)
	}
	copy(g[:], b)
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5], g[6], g[7] = b[5], b[4], b[7], b[6]
	return g
}

type vhdxParser struct {
	s        stream
	headers  [2][]byte
	nHeaders int
	errs     problems // every failure found on the way
	metaOff  int64
	size     []byte // the Virtual Disk Size item
	params   []byte // the File Parameters item
	parent   bool   // a parent locator item exists
	logDone  bool   // the log was found empty, or checked
}

func probeVHDX(s stream, head []byte) parser {
	if !bytes.HasPrefix(head, vhdxMagic) {
		return nil
	}
	v := &vhdxParser{s: s}
	s.capture(vhdxHeaderOff, vhdxHeaderLen, vhdxHeaderLen, func(b []byte) { v.onHeader(0, b) })
	s.capture(vhdxHeaderOff2, vhdxHeaderLen, vhdxHeaderLen, func(b []byte) { v.onHeader(1, b) })
	s.capture(vhdxRegionTableOff, vhdxTableLen, vhdxTableLen, v.onRegionTable)
	return v
}

func (v *vhdxParser) fail(format string, args ...any) { v.errs.add(true, format, args...) }

// checksumOK verifies a CRC-32C stored at b[4:8], computed with that field
// zeroed, as VHDX headers and region tables carry.
func checksumOK(b []byte) bool {
	want := binary.LittleEndian.Uint32(b[4:])
	c := crc32.Update(0, crc32c, b[:4])
	c = crc32.Update(c, crc32c, []byte{0, 0, 0, 0})
	return crc32.Update(c, crc32c, b[8:]) == want
}

func (v *vhdxParser) onHeader(i int, b []byte) {
	if bytes.HasPrefix(b, vhdxHeaderSig) && checksumOK(b) {
		v.headers[i] = b
	}
	if v.nHeaders++; v.nHeaders == 2 {
		v.onHeaders()
	}
}

// onHeaders picks the current header (the valid one with the higher
// sequence number) and, if it names a log, checks the log is empty.
func (v *vhdxParser) onHeaders() {
	cur := v.headers[0]
	if h := v.headers[1]; h != nil && (cur == nil || seq(h) > seq(cur)) {
		cur = h
	}
	if cur == nil {
		v.fail("no valid header")
		return
	}
	var logGUID [16]byte
	copy(logGUID[:], cur[48:64])
	if logGUID == ([16]byte{}) {
		v.logDone = true
		return
	}
	logLen := int(binary.LittleEndian.Uint32(cur[68:]))
	logOff := int64(binary.LittleEndian.Uint64(cur[72:]))
	if logLen <= 0 || logLen > maxRegion {
		v.fail("log of %d bytes cannot be checked", logLen)
		return
	}
	v.s.capture(logOff, logLen, logLen, func(b []byte) { v.onLog(b, logGUID) })
}

func seq(h []byte) uint64 { return binary.LittleEndian.Uint64(h[8:]) }

// onLog looks for log entries of the current log: qemu would replay them
// and so read metadata other than the bytes we inspected.
func (v *vhdxParser) onLog(b []byte, guid [16]byte) {
	for off := 0; off+vhdxLogEntryLen <= len(b); off += vhdxLogEntryLen {
		e := b[off:]
		if bytes.HasPrefix(e, vhdxLogEntrySig) && bytes.Equal(e[32:48], guid[:]) {
			v.fail("log has entries to replay")
			return
		}
	}
	v.logDone = true
}

func (v *vhdxParser) onRegionTable(b []byte) {
	off, err := parseVHDXRegionTable(b)
	if err != nil {
		v.fail("%v", err)
		return
	}
	v.metaOff = off
	v.s.capture(off, vhdxTableLen, vhdxTableLen, v.onMetadataTable)
}

// parseVHDXRegionTable returns the metadata region's offset.
func parseVHDXRegionTable(b []byte) (int64, error) {
	if len(b) < vhdxTableLen || !bytes.HasPrefix(b, vhdxRegionSig) {
		return 0, errors.New("region table signature missing")
	}
	if !checksumOK(b) {
		return 0, errors.New("region table checksum mismatch")
	}
	count := binary.LittleEndian.Uint32(b[8:])
	if count > vhdxMaxEntries {
		return 0, fmt.Errorf("region table has %d entries (limit %d)", count, vhdxMaxEntries)
	}
	var meta int64 = -1
	for i := range int(count) {
		e := b[16+32*i : 48+32*i]
		off, err := vhdxRegionEntry(e)
		if err != nil {
			return 0, err
		}
		if off >= 0 {
			meta = off
		}
	}
	if meta < 0 {
		return 0, errors.New("no metadata region")
	}
	return meta, nil
}

// vhdxRegionEntry checks one region table entry; it returns the offset of
// the metadata region, or -1 for any other region.
func vhdxRegionEntry(e []byte) (int64, error) {
	guid := [16]byte(e[:16])
	off := binary.LittleEndian.Uint64(e[16:])
	length := binary.LittleEndian.Uint32(e[24:])
	required := binary.LittleEndian.Uint32(e[28:])&1 != 0
	switch {
	case off%vhdxMiB != 0 || off < vhdxMiB || off > 1<<62 || length%vhdxMiB != 0 || length == 0:
		return 0, fmt.Errorf("region at %#x (%d bytes) misaligned", off, length)
	case guid == vhdxMetaRegion:
		return int64(off), nil
	case guid != vhdxBATRegion && required:
		return 0, errors.New("unknown required region")
	}
	return -1, nil
}

func (v *vhdxParser) onMetadataTable(b []byte) {
	items, err := parseVHDXMetadataTable(b)
	if err != nil {
		v.fail("%v", err)
		return
	}
	v.parent = items.parent
	v.item(items.size, func(d []byte) { v.size = d })
	v.item(items.params, func(d []byte) { v.params = d })
}

// vhdxItems locates the metadata items we read (offsets relative to the
// metadata region; 0 when absent).
type vhdxItems struct {
	size, params uint32
	parent       bool
}

func parseVHDXMetadataTable(b []byte) (vhdxItems, error) {
	var it vhdxItems
	if len(b) < vhdxTableLen || !bytes.HasPrefix(b, vhdxMetadataSig) {
		return it, errors.New("metadata table signature missing")
	}
	count := int(binary.LittleEndian.Uint16(b[10:]))
	if count > vhdxMaxEntries {
		return it, fmt.Errorf("metadata table has %d entries (limit %d)", count, vhdxMaxEntries)
	}
	for i := range count {
		if err := it.add(b[32+32*i : 64+32*i]); err != nil {
			return it, err
		}
	}
	if it.size == 0 || it.params == 0 {
		return it, errors.New("virtual disk size or file parameters missing")
	}
	return it, nil
}

func (it *vhdxItems) add(e []byte) error {
	guid := [16]byte(e[:16])
	off := binary.LittleEndian.Uint32(e[16:])
	length := binary.LittleEndian.Uint32(e[20:])
	flags := binary.LittleEndian.Uint32(e[24:])
	switch guid {
	case vhdxVirtualSize, vhdxFileParams:
		if length != 8 || off < vhdxTableLen {
			return fmt.Errorf("metadata item at %#x (%d bytes) invalid", off, length)
		}
		if guid == vhdxVirtualSize {
			it.size = off
		} else {
			it.params = off
		}
	case vhdxParentLoc:
		it.parent = true
	case vhdxPage83, vhdxLogicalSect, vhdxPhysicalSect:
	default:
		if flags&vhdxRequired != 0 {
			return errors.New("unknown required metadata item")
		}
	}
	return nil
}

// item captures the 8-byte item at off in the metadata region; items start
// past the 64 KiB table, so they are never inside the captured table.
func (v *vhdxParser) item(off uint32, done func([]byte)) {
	v.s.capture(v.metaOff+int64(off), 8, 8, done)
}

func (v *vhdxParser) verdict(streamEnd) (outcome, bool) {
	o := outcome{format: VHDX}
	p := append(problems(nil), v.errs...)
	if v.size == nil || v.params == nil {
		p.add(len(p) == 0, "metadata not found in the stream (truncated?)")
		o.err = p.err()
		return o, true
	}
	size := binary.LittleEndian.Uint64(v.size)
	if size > vhdxMaxSize {
		p.add(true, "virtual size %d exceeds 64 TiB", size)
	} else {
		o.virtualSize = int64(size)
	}
	o.err = append(p, v.safety()...).err()
	return o, true
}

func (v *vhdxParser) safety() problems {
	var p problems
	block := binary.LittleEndian.Uint32(v.params)
	flags := binary.LittleEndian.Uint32(v.params[4:])
	p.add(block < vhdxMinBlockSize || block > vhdxMaxBlockSize || bits.OnesCount32(block) != 1,
		"block size %d invalid", block)
	p.add(v.parent || flags&vhdxHasParent != 0, "differencing VHDX refers to a parent image")
	p.add(!v.logDone && len(v.errs) == 0, "log could not be checked")
	return p
}
