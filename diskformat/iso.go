package diskformat

import (
	"encoding/binary"
)

// ISO 9660 and UDF: after a 32 KiB system area, 2 KiB volume descriptors
// from sector 16 until a terminator. Glance matches the identifier of
// sector 16 (CD001 for ISO 9660, NSR02/NSR03 for UDF); we add BEA01, which
// opens a UDF volume recognition sequence. The virtual size comes from the
// primary volume descriptor; qemu reads an ISO as raw, so without one it is
// the stream length. ISO has no safety check of its own: an ISO is only
// ever read as data, and a header of another format hidden in its system
// area makes it a polyglot (see decide).
const (
	isoSectorLen   = 2048
	isoFirstSector = 16
	isoTypePrimary = 1
	isoTerminator  = 255
	isoLastSector  = headSize/isoSectorLen - 1 // the descriptors we can see in the head
)

var isoIdentifiers = []string{"CD001", "NSR02", "NSR03", "BEA01"}

type isoParser struct {
	size int64 // from the primary volume descriptor; -1 when there is none
}

func probeISO(_ stream, head []byte) parser {
	if !isISOSector(head, isoFirstSector) {
		return nil
	}
	return &isoParser{size: isoVolumeSize(head)}
}

func isoSector(b []byte, n int) []byte {
	if len(b) < (n+1)*isoSectorLen {
		return nil
	}
	return b[n*isoSectorLen : (n+1)*isoSectorLen]
}

func isISOSector(b []byte, n int) bool {
	s := isoSector(b, n)
	if s == nil {
		return false
	}
	for _, id := range isoIdentifiers {
		if string(s[1:6]) == id {
			return true
		}
	}
	return false
}

// isoVolumeSize walks the volume descriptors to the primary one and returns
// volume_space_size × logical_block_size (the little-endian halves of the
// both-endian fields), or -1.
func isoVolumeSize(b []byte) int64 {
	for n := isoFirstSector; n <= isoLastSector; n++ {
		s := isoSector(b, n)
		if s == nil || !isISOSector(b, n) || s[0] == isoTerminator {
			return -1
		}
		if s[0] == isoTypePrimary && string(s[1:6]) == "CD001" {
			blocks := int64(binary.LittleEndian.Uint32(s[80:]))
			return blocks * int64(binary.LittleEndian.Uint16(s[128:]))
		}
	}
	return -1
}

func (p *isoParser) verdict(end streamEnd) (outcome, bool) {
	size := p.size
	if size < 0 {
		size = end.size
	}
	return outcome{format: ISO, virtualSize: size}, true
}
