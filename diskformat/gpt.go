package diskformat

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// MBR and GPT partition tables (named gpt, as in Glance, which reads either
// as raw). The boot sector ends in 0x55AA; a FAT boot sector has the same
// signature and is excluded by Glance's test. Glance's "mbr" check: valid
// boot flags, a well-formed protective entry, nothing but the protective
// entry when there is one, and at least one partition. We also refuse
// partitions that are empty, overlap the MBR or each other, or extend past
// the end of the image, and, behind a protective MBR, a GPT header or
// partition array that is missing, fails its CRC or is inconsistent.
const (
	mbrLen           = 512
	mbrEntriesOff    = 446
	mbrEntryLen      = 16
	mbrProtective    = 0xEE
	fatMediaFixed    = 0xF8
	gptHeaderMinLen  = 92
	gptEntryMinLen   = 128
	gptMaxArrayBytes = 1 << 20
	gptLargeSector   = 4096
)

var gptSignature = []byte("EFI PART")

type mbrEntry struct {
	boot, kind  byte
	startCHS    [3]byte
	start, size uint32
}

type gptParser struct {
	mbr      [4]mbrEntry
	problems problems
	gpt      *gptHeader
	entries  []byte // the partition array, once captured
}

type gptHeader struct {
	sector                  int64 // bytes per logical block
	alternate               uint64
	firstUsable, lastUsable uint64
	entriesLBA              uint64
	numEntries, entrySize   uint32
	entriesCRC              uint32
	arrayLen                int
	arrayOff                int64
}

func probeGPT(s stream, head []byte) parser {
	if !isMBR(head) {
		return nil
	}
	g := &gptParser{}
	for i := range g.mbr {
		g.mbr[i] = parseMBREntry(head[mbrEntriesOff+mbrEntryLen*i:])
	}
	g.checkMBR()
	if g.protective() && len(g.problems) == 0 {
		g.findGPT(s, head)
	}
	return g
}

// isMBR is Glance's test: the boot signature, and not a FAT boot sector
// (two FATs and the fixed-disk media descriptor).
func isMBR(b []byte) bool {
	if len(b) < mbrLen || b[510] != 0x55 || b[511] != 0xAA {
		return false
	}
	return !(b[0x10] == 2 && b[0x15] == fatMediaFixed)
}

func parseMBREntry(b []byte) mbrEntry {
	return mbrEntry{
		boot:     b[0],
		startCHS: [3]byte(b[1:4]),
		kind:     b[4],
		start:    binary.LittleEndian.Uint32(b[8:]),
		size:     binary.LittleEndian.Uint32(b[12:]),
	}
}

func (g *gptParser) protective() bool {
	return slices.ContainsFunc(g.mbr[:], func(e mbrEntry) bool { return e.kind == mbrProtective })
}

// checkMBR runs Glance's checks, then ours on the primary partitions.
func (g *gptParser) checkMBR() {
	used := 0
	for i, e := range g.mbr {
		g.problems.add(e.boot != 0 && e.boot != 0x80, "partition %d has an invalid boot flag", i)
		if e.kind == 0 {
			continue
		}
		used++
		if e.kind == mbrProtective {
			g.problems.add(e.startCHS != [3]byte{0, 2, 0}, "protective MBR has an invalid start CHS")
			g.problems.add(e.start != 1, "protective MBR does not start at LBA 1")
			continue
		}
		g.problems.add(e.size == 0, "partition %d is empty", i)
		g.problems.add(e.start == 0, "partition %d overlaps the MBR", i)
	}
	g.problems.add(used == 0, "no partitions defined")
	g.problems.add(g.protective() && (g.mbr[0].kind != mbrProtective || used != 1),
		"protective MBR defines invalid extra partitions")
	g.checkOverlaps()
}

func (g *gptParser) checkOverlaps() {
	for i, a := range g.mbr {
		for j := i + 1; j < len(g.mbr); j++ {
			b := g.mbr[j]
			if a.kind == 0 || b.kind == 0 || a.size == 0 || b.size == 0 {
				continue
			}
			aEnd, bEnd := uint64(a.start)+uint64(a.size), uint64(b.start)+uint64(b.size)
			g.problems.add(uint64(a.start) < bEnd && uint64(b.start) < aEnd, "partitions %d and %d overlap", i, j)
		}
	}
}

// findGPT reads the GPT header behind a protective MBR, at LBA 1 of a
// 512-byte or a 4 KiB sector disk, and asks for its partition array.
func (g *gptParser) findGPT(s stream, head []byte) {
	for _, sector := range []int64{mbrLen, gptLargeSector} {
		if int64(len(head)) >= 2*sector && bytes.HasPrefix(head[sector:], gptSignature) {
			h, err := parseGPTHeader(head[sector:2*sector], sector)
			if err != nil {
				g.problems.add(true, "%v", err)
				return
			}
			g.gpt = &h
			s.capture(h.arrayOff, h.arrayLen, h.arrayLen, func(b []byte) { g.entries = b })
			return
		}
	}
	g.problems.add(true, "protective MBR without a GPT header")
}

// parseGPTHeader validates a GPT header; b is its whole logical block.
func parseGPTHeader(b []byte, sector int64) (gptHeader, error) {
	le := binary.LittleEndian
	h := gptHeader{sector: sector}
	size := le.Uint32(b[12:])
	if size < gptHeaderMinLen || int64(size) > sector {
		return h, fmt.Errorf("GPT header size %d invalid", size)
	}
	if gptCRC(b[:size], 16) != le.Uint32(b[16:]) {
		return h, errors.New("GPT header CRC mismatch")
	}
	if le.Uint64(b[24:]) != 1 {
		return h, errors.New("GPT header not at LBA 1")
	}
	h.alternate, h.firstUsable, h.lastUsable = le.Uint64(b[32:]), le.Uint64(b[40:]), le.Uint64(b[48:])
	h.entriesLBA, h.numEntries, h.entrySize = le.Uint64(b[72:]), le.Uint32(b[80:]), le.Uint32(b[84:])
	h.entriesCRC = le.Uint32(b[88:])
	return h, h.validate()
}

// gptCRC is the CRC-32 of b with the 4-byte field at off taken as zero.
func gptCRC(b []byte, off int) uint32 {
	c := crc32.Update(0, crc32.IEEETable, b[:off])
	c = crc32.Update(c, crc32.IEEETable, []byte{0, 0, 0, 0})
	return crc32.Update(c, crc32.IEEETable, b[off+4:])
}

func (h *gptHeader) validate() error {
	if h.entrySize < gptEntryMinLen || h.entrySize%8 != 0 {
		return fmt.Errorf("GPT entry size %d invalid", h.entrySize)
	}
	array := uint64(h.numEntries) * uint64(h.entrySize)
	if array == 0 || array > gptMaxArrayBytes {
		return fmt.Errorf("GPT partition array of %d bytes invalid", array)
	}
	sectors := uint64(h.sector)
	arrayEnd := h.entriesLBA + (array+sectors-1)/sectors
	switch {
	case h.entriesLBA < 2 || h.entriesLBA > 1<<40:
		return fmt.Errorf("GPT partition array at LBA %d invalid", h.entriesLBA)
	case h.firstUsable < arrayEnd || h.firstUsable > h.lastUsable || h.lastUsable > 1<<52:
		return fmt.Errorf("GPT usable range %d-%d invalid", h.firstUsable, h.lastUsable)
	}
	h.arrayLen = int(array)
	h.arrayOff = int64(h.entriesLBA) * h.sector
	return nil
}

func (g *gptParser) verdict(end streamEnd) (outcome, bool) {
	p := append(problems(nil), g.problems...)
	for i, e := range g.mbr {
		p.add(e.kind != 0 && e.kind != mbrProtective && uint64(e.start)+uint64(e.size) > uint64(end.size)/512,
			"partition %d extends past the end of the image", i)
	}
	if g.gpt != nil {
		p = append(p, g.gpt.check(g.entries, end.size)...)
	}
	return outcome{format: GPT, virtualSize: end.size, err: p.err()}, true
}

// check validates the partition array against the header and the image.
func (h *gptHeader) check(array []byte, size int64) problems {
	var p problems
	blocks := uint64(size / h.sector)
	p.add(h.lastUsable >= blocks || h.alternate >= blocks, "GPT extends past the end of the image")
	if array == nil {
		p.add(true, "GPT partition array missing (truncated?)")
		return p
	}
	if crc32.ChecksumIEEE(array) != h.entriesCRC {
		p.add(true, "GPT partition array CRC mismatch")
		return p
	}
	return append(p, h.checkPartitions(array)...)
}

type gptPartition struct{ first, last uint64 }

func (h *gptHeader) checkPartitions(array []byte) problems {
	var p problems
	var parts []gptPartition
	for i := range int(h.numEntries) {
		e := array[i*int(h.entrySize):]
		if isZero(e[:16]) {
			continue
		}
		part := gptPartition{binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])}
		p.add(part.first > part.last || part.first < h.firstUsable || part.last > h.lastUsable,
			"GPT partition %d outside the usable range", i)
		parts = append(parts, part)
	}
	slices.SortFunc(parts, func(a, b gptPartition) int { return cmp.Compare(a.first, b.first) })
	for i := 1; i < len(parts); i++ {
		if parts[i].first <= parts[i-1].last {
			p.add(true, "GPT partitions overlap")
			break
		}
	}
	return p
}
