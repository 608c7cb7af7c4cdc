package diskformat

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// VDI (VirtualBox): a little-endian header whose signature sits at 0x40,
// after a free-text banner. Glance only reads the size; we refuse what
// qemu's block/vdi.c refuses and the differencing kinds, which link to a
// parent image.
const (
	vdiSigOff        = 0x40
	vdiSignature     = 0xBEDA107F
	vdiHeaderLen     = 0x1c8 // up to the end of uuid_parent
	vdiVersion11     = 0x00010001
	vdiDynamic       = 1
	vdiStatic        = 2
	vdiSectorSize    = 512
	vdiBlockSize     = 1 << 20
	vdiMaxBlocks     = 0x3fffffff // VDI_BLOCKS_IN_IMAGE_MAX
	vdiMaxDiskSize   = vdiMaxBlocks * vdiBlockSize
	vdiUUIDLinkOff   = 0x1a8
	vdiUUIDParentOff = 0x1b8
)

type vdiParser struct {
	size int64
	err  error
}

func probeVDI(_ stream, head []byte) parser {
	if len(head) < vdiSigOff+4 || binary.LittleEndian.Uint32(head[vdiSigOff:]) != vdiSignature {
		return nil
	}
	size, err := parseVDI(head)
	return &vdiParser{size: size, err: err}
}

func (v *vdiParser) verdict(streamEnd) (outcome, bool) {
	return outcome{format: VDI, virtualSize: v.size, err: v.err}, true
}

// parseVDI returns the virtual size, and why the image is refused, if it is.
func parseVDI(b []byte) (int64, error) {
	if len(b) < vdiHeaderLen {
		return 0, truncated("header", len(b), vdiHeaderLen)
	}
	le := binary.LittleEndian
	size := le.Uint64(b[0x170:])
	if size > vdiMaxDiskSize {
		return 0, fmt.Errorf("virtual size %d exceeds qemu's limit", size)
	}
	return int64(size), checkVDI(b, size)
}

func checkVDI(b []byte, size uint64) error {
	le := binary.LittleEndian
	imageType := le.Uint32(b[0x4c:])
	blocks := uint64(le.Uint32(b[0x180:]))
	switch {
	case le.Uint32(b[0x44:]) != vdiVersion11:
		return fmt.Errorf("unsupported version %#x", le.Uint32(b[0x44:]))
	case imageType != vdiDynamic && imageType != vdiStatic:
		return fmt.Errorf("image type %d (undo or differencing) refers to a parent image", imageType)
	case !isZero(b[vdiUUIDLinkOff:vdiUUIDLinkOff+16]) || !isZero(b[vdiUUIDParentOff:vdiUUIDParentOff+16]):
		return errors.New("image links to a parent image")
	case le.Uint32(b[0x154:])%vdiSectorSize != 0 || le.Uint32(b[0x158:])%vdiSectorSize != 0:
		return errors.New("block map or data offset not sector aligned")
	case le.Uint32(b[0x168:]) != vdiSectorSize || le.Uint32(b[0x178:]) != vdiBlockSize:
		return errors.New("unsupported sector or block size")
	case blocks > vdiMaxBlocks || size > blocks*vdiBlockSize:
		return fmt.Errorf("block map of %d blocks does not cover the disk", blocks)
	}
	return nil
}
