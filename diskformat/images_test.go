package diskformat

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// Builders and patchers for hand-made images, shared by the corpus test,
// the unit tests and the fuzz seeds.

// piece is data placed at an offset of a sparse image.
type piece struct {
	off  int64
	data []byte
}

// sparseFile writes a file of size bytes, zero but for the pieces.
func sparseFile(t testing.TB, dir, name string, size int64, pieces ...piece) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, p := range pieces {
		if _, err := f.WriteAt(p.data, p.off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// patchFile overwrites bytes of an existing file.
func patchFile(t testing.TB, path string, pieces ...piece) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range pieces {
		if _, err := f.WriteAt(p.data, p.off); err != nil {
			t.Fatal(err)
		}
	}
}

func readAt(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func u16le(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func u32le(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64le(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func u32be(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64be(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// isoDescriptors returns sectors 16 and 17 of an ISO 9660 volume of blocks
// 2 KiB blocks: the primary volume descriptor and the set terminator.
func isoDescriptors(blocks uint32) []byte {
	b := make([]byte, 2*isoSectorLen)
	pvd := b[:isoSectorLen]
	pvd[0] = isoTypePrimary
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	copy(pvd[8:], "LINUX                           ")
	copy(pvd[40:], "XLOUD_TEST                      ")
	binary.LittleEndian.PutUint32(pvd[80:], blocks)
	binary.BigEndian.PutUint32(pvd[84:], blocks)
	binary.LittleEndian.PutUint16(pvd[128:], isoSectorLen)
	binary.BigEndian.PutUint16(pvd[130:], isoSectorLen)
	term := b[isoSectorLen:]
	term[0] = isoTerminator
	copy(term[1:], "CD001")
	term[6] = 1
	return b
}

// isoPiece places the volume descriptors of an ISO of blocks blocks.
func isoPiece(blocks uint32) piece {
	return piece{isoFirstSector * isoSectorLen, isoDescriptors(blocks)}
}

// mbrPart is one primary partition entry.
type mbrPart struct {
	boot, kind  byte
	chs         [3]byte
	start, size uint32
}

// mbrSector returns a boot sector holding parts.
func mbrSector(parts ...mbrPart) []byte {
	b := make([]byte, mbrLen)
	for i, p := range parts {
		e := b[mbrEntriesOff+mbrEntryLen*i:]
		e[0], e[4] = p.boot, p.kind
		copy(e[1:4], p.chs[:])
		binary.LittleEndian.PutUint32(e[8:], p.start)
		binary.LittleEndian.PutUint32(e[12:], p.size)
	}
	b[510], b[511] = 0x55, 0xAA
	return b
}

// protectiveMBR is the MBR of a GPT disk of the given number of sectors.
func protectiveMBR(sectors uint64) []byte {
	return mbrSector(mbrPart{kind: mbrProtective, chs: [3]byte{0, 2, 0}, start: 1,
		size: uint32(min(sectors-1, 0xffffffff))})
}

// gptPart is one GPT partition, in 512-byte LBAs.
type gptPart struct{ first, last uint64 }

// gptPieces returns the protective MBR, primary header and a 128-entry
// partition array of a disk of the given sectors, with correct CRCs.
func gptPieces(sectors uint64, parts ...gptPart) []piece {
	const entries, entryLen = 128, 128
	array := make([]byte, entries*entryLen)
	for i, p := range parts {
		e := array[i*entryLen:]
		copy(e, "\xaf\x3d\xc6\x0f\x83\x84\x72\x47\x8e\x79\x3d\x69\xd8\x47\x7d\xe4") // Linux data
		e[16] = byte(i + 1)
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
	}
	h := make([]byte, mbrLen)
	copy(h, gptSignature)
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], gptHeaderMinLen)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], sectors-1)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], sectors-34)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], entries)
	binary.LittleEndian.PutUint32(h[84:], entryLen)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(array))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:gptHeaderMinLen]))
	return []piece{{0, protectiveMBR(sectors)}, {512, h}, {1024, array}}
}

// vhdChecksum is the one's complement of the byte sum of a VHD footer with
// its checksum field zeroed.
func vhdChecksum(footer []byte) []byte {
	var sum uint32
	for i, c := range footer[:vhdFooterLen] {
		if i < 64 || i >= 68 {
			sum += uint32(c)
		}
	}
	return u32be(^sum)
}

// setCRC32C stores the VHDX checksum of b at b[4:8].
func setCRC32C(b []byte) {
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b, crc32c))
}

// qcow2Header returns a minimal version 3 qcow2 header of size bytes with
// 64 KiB clusters and an L1 table large enough.
func qcow2HeaderBytes(size uint64) []byte {
	b := make([]byte, 512)
	copy(b, qcow2Magic)
	binary.BigEndian.PutUint32(b[4:], 3)
	binary.BigEndian.PutUint32(b[20:], 16)
	binary.BigEndian.PutUint64(b[24:], size)
	l1 := (size + (1<<29 - 1)) >> 29
	binary.BigEndian.PutUint32(b[36:], uint32(l1))
	binary.BigEndian.PutUint64(b[40:], 3<<16)
	binary.BigEndian.PutUint64(b[48:], 1<<16)
	binary.BigEndian.PutUint32(b[56:], 1)
	binary.BigEndian.PutUint32(b[96:], 4)
	binary.BigEndian.PutUint32(b[100:], 112)
	return b
}
