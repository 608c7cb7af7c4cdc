package diskformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// VHD ("vpc" to qemu): a 512-byte big-endian footer. Dynamic and
// differencing disks keep a copy of it at offset 0, which is what qemu and
// Glance probe; a fixed disk has it only at the end and so reads as raw (see
// rawOutcome). The virtual size follows qemu's block/vpc.c, which trusts the
// CHS geometry unless the creator application is one known to write the
// exact size.
const (
	vhdFooterLen     = 512
	vhdDynHeaderLen  = 1024
	vhdFixed         = 2
	vhdDynamic       = 3
	vhdDifferencing  = 4
	vhdMaxSectors    = 0xff000000       // VHD_MAX_SECTORS, 2040 GiB
	vhdMaxGeometry   = 65535 * 16 * 255 // VHD_MAX_GEOMETRY
	vhdMaxBATEntries = 0xffffffff
)

var (
	vhdMagic    = []byte("conectix")
	vhdDynMagic = []byte("cxsparse")
	// vhdSizeCreators write the exact size in current_size, not in the
	// geometry (qemu's use_chs table).
	vhdSizeCreators = []string{"win ", "qem2", "d2v ", "CTXS", "tap\x00"}
)

type vhdFooter struct {
	dataOffset  uint64
	creator     string
	currentSize uint64
	cyls        uint16
	heads       uint8
	secs        uint8
	diskType    uint32
}

type vhdParser struct {
	f   vhdFooter
	err error  // the footer is malformed
	dyn []byte // the dynamic disk header, once captured
}

func probeVHD(s stream, head []byte) parser {
	if !bytes.HasPrefix(head, vhdMagic) {
		return nil
	}
	v := &vhdParser{}
	v.f, v.err = parseVHDFooter(head)
	if v.err == nil && v.f.diskType != vhdFixed {
		s.capture(int64(v.f.dataOffset), vhdDynHeaderLen, vhdDynHeaderLen, func(b []byte) { v.dyn = b })
	}
	return v
}

func parseVHDFooter(b []byte) (vhdFooter, error) {
	var f vhdFooter
	if len(b) < vhdFooterLen {
		return f, truncated("footer", len(b), vhdFooterLen)
	}
	be := binary.BigEndian
	f.dataOffset = be.Uint64(b[16:])
	f.creator = string(b[28:32])
	f.currentSize = be.Uint64(b[48:])
	f.cyls = be.Uint16(b[56:])
	f.heads, f.secs = b[58], b[59]
	f.diskType = be.Uint32(b[60:])
	if f.diskType < vhdFixed || f.diskType > vhdDifferencing {
		return f, fmt.Errorf("unknown disk type %d", f.diskType)
	}
	// The dynamic header follows the footer copy; a data_offset pointing
	// back into the footer, or anywhere absurd, is a forged header.
	if f.diskType != vhdFixed && (f.dataOffset < vhdFooterLen || f.dataOffset > math.MaxInt64) {
		return f, fmt.Errorf("dynamic header offset %#x invalid", f.dataOffset)
	}
	return f, nil
}

// sectors is the virtual size in 512-byte sectors, as qemu computes it.
func (f vhdFooter) sectors() uint64 {
	chs := uint64(f.cyls) * uint64(f.heads) * uint64(f.secs)
	for _, c := range vhdSizeCreators {
		if f.creator == c {
			return f.currentSize / 512
		}
	}
	if chs == vhdMaxGeometry {
		return f.currentSize / 512
	}
	return chs
}

func (v *vhdParser) verdict(streamEnd) (outcome, bool) {
	o := outcome{format: VHD}
	if v.err != nil {
		o.err = v.err
		return o, true
	}
	sectors := v.f.sectors()
	if sectors > vhdMaxSectors {
		o.err = fmt.Errorf("virtual size of %d sectors exceeds qemu's 2040 GiB limit", sectors)
		return o, true
	}
	o.virtualSize = int64(sectors * 512)
	o.err = v.check(sectors)
	return o, true
}

func (v *vhdParser) check(sectors uint64) error {
	switch v.f.diskType {
	case vhdDifferencing:
		return errors.New("differencing VHD refers to a parent image")
	case vhdDynamic:
		return checkVHDDynamic(v.dyn, sectors)
	}
	return nil
}

// checkVHDDynamic validates the dynamic disk header as qemu's vpc_open does:
// a block table that cannot cover the disk, or a block size that is not a
// power of two, makes qemu refuse the image.
func checkVHDDynamic(b []byte, sectors uint64) error {
	if len(b) < vhdDynHeaderLen {
		return errors.New("dynamic disk header missing or truncated")
	}
	if !bytes.HasPrefix(b, vhdDynMagic) {
		return errors.New("dynamic disk header has no cxsparse cookie")
	}
	entries := uint64(binary.BigEndian.Uint32(b[28:]))
	blockSize := uint64(binary.BigEndian.Uint32(b[32:]))
	switch {
	case blockSize < 512 || bits.OnesCount64(blockSize) != 1:
		return fmt.Errorf("block size %d invalid", blockSize)
	case sectors*512/blockSize > vhdMaxBATEntries,
		entries > vhdMaxSectors*512/blockSize,
		entries*blockSize < sectors*512:
		return fmt.Errorf("block table of %d entries does not match the disk size", entries)
	}
	return nil
}
