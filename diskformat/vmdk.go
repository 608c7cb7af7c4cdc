package diskformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// VMDK comes as a sparse file (little-endian "KDMV" header, then an
// embedded descriptor at sector 1), as a descriptor-only text file whose
// data lives in other files, or as the old VMware 3 "COWD" sparse file. Only
// the single-file sparse kinds, monolithicSparse and streamOptimized, are
// safe; the rules for the descriptor are in vmdk_descriptor.go. The header
// limits follow qemu's block/vmdk.c, which refuses anything else.
const (
	vmdkSector        = 512
	vmdkHeaderLen     = 79 // VMDK4Header with its magic
	vmdkDescSector    = 1
	vmdkMaxDesc       = 1<<20 - 1
	vmdkGDAtEnd       = math.MaxUint64
	vmdkMarkerFooter  = 3
	vmdkMaxGTEs       = 512
	vmdkMaxGrain      = 0x200000 // sectors
	vmdkMaxL1Entries  = 32 << 20
	vmdkCOWDHeaderLen = 16
	vmdkProbeLen      = 512 // what qemu's probe and Glance's text test see
)

var (
	vmdkMagic     = []byte("KDMV")
	vmdkCOWDMagic = []byte("COWD")
)

type vmdkHeader struct {
	version     uint32
	capacity    uint64 // sectors
	grain       uint64 // sectors
	descSector  uint64
	descSectors uint64
	gtesPerGT   uint32
	gdOffset    uint64
	grainOffset uint64 // sectors of metadata before the first grain
}

type vmdkParser struct {
	text   bool // a descriptor-only file
	cowd   bool
	h      vmdkHeader
	err    error  // the header is malformed
	desc   []byte // the descriptor, once captured
	hasEnd bool   // the header says the real one is in the footer
}

func probeVMDK(s stream, head []byte) parser {
	switch {
	case bytes.HasPrefix(head, vmdkMagic):
		return probeVMDKSparse(s, head)
	case bytes.HasPrefix(head, vmdkCOWDMagic):
		return probeVMDKCOWD(head)
	}
	probe := head[:min(len(head), vmdkProbeLen)]
	if !vmdkTextProbe(probe) && !looksLikeText(probe) {
		return nil
	}
	v := &vmdkParser{text: true}
	s.capture(0, vmdkMaxDesc, 1, func(b []byte) { v.desc = b })
	return v
}

// probeVMDKCOWD recognises the VMware 3 sparse format, which qemu still
// opens; nothing else reads it, so it is refused.
func probeVMDKCOWD(head []byte) parser {
	v := &vmdkParser{cowd: true, err: errors.New("VMware 3 (COWD) images are not supported")}
	if len(head) >= vmdkCOWDHeaderLen {
		v.h.capacity = uint64(binary.LittleEndian.Uint32(head[12:]))
	}
	return v
}

func probeVMDKSparse(s stream, head []byte) parser {
	v := &vmdkParser{}
	v.h, v.err = parseVMDKHeader(head)
	if v.err != nil {
		return v
	}
	n := int(min(v.h.descSectors*vmdkSector, vmdkMaxDesc))
	s.capture(vmdkSector, n, n, func(b []byte) { v.desc = b })
	if v.h.gdOffset == vmdkGDAtEnd {
		v.hasEnd = true
		s.keepTail()
	}
	return v
}

// parseVMDKHeader reads and validates a sparse header; b starts at its
// magic.
func parseVMDKHeader(b []byte) (vmdkHeader, error) {
	var h vmdkHeader
	if len(b) < vmdkHeaderLen {
		return h, truncated("header", len(b), vmdkHeaderLen)
	}
	le := binary.LittleEndian
	h.version = le.Uint32(b[4:])
	h.capacity = le.Uint64(b[12:])
	h.grain = le.Uint64(b[20:])
	h.descSector = le.Uint64(b[28:])
	h.descSectors = le.Uint64(b[36:])
	h.gtesPerGT = le.Uint32(b[44:])
	h.gdOffset = le.Uint64(b[56:])
	h.grainOffset = le.Uint64(b[64:])
	return h, h.validate()
}

func (h vmdkHeader) validate() error {
	switch {
	case h.version < 1 || h.version > 3:
		return fmt.Errorf("unsupported version %d", h.version)
	case h.capacity > math.MaxInt64/vmdkSector:
		return fmt.Errorf("capacity of %d sectors overflows", h.capacity)
	case h.gtesPerGT == 0 || h.gtesPerGT > vmdkMaxGTEs:
		return fmt.Errorf("%d grain table entries per table out of range", h.gtesPerGT)
	case h.grain == 0 || h.grain > vmdkMaxGrain:
		return fmt.Errorf("grain of %d sectors out of range", h.grain)
	case h.descSector == 0 || h.descSectors == 0:
		return errors.New("no embedded descriptor (an extent of a multi-file VMDK?)")
	case h.descSector != vmdkDescSector:
		return fmt.Errorf("descriptor at sector %d, not 1", h.descSector)
	}
	perL1 := uint64(h.gtesPerGT) * h.grain
	l1 := h.capacity / perL1
	if h.capacity%perL1 != 0 {
		l1++
	}
	if l1 > vmdkMaxL1Entries {
		return fmt.Errorf("capacity of %d sectors needs too large a grain directory", h.capacity)
	}
	return nil
}

func (v *vmdkParser) verdict(end streamEnd) (outcome, bool) {
	o := outcome{format: VMDK}
	switch {
	case v.cowd:
		o.virtualSize, o.err = int64(v.h.capacity*vmdkSector), v.err
	case v.text:
		return v.textVerdict()
	case v.err != nil:
		o.virtualSize, o.err = v.h.claimedSize(), v.err
	default:
		o.virtualSize, o.err = v.sparseVerdict(end)
	}
	return o, true
}

// textVerdict judges a descriptor-only file; text that neither qemu nor
// Glance would take for a descriptor is not VMDK at all.
func (v *vmdkParser) textVerdict() (outcome, bool) {
	if v.desc == nil {
		return outcome{}, false
	}
	probe := v.desc[:min(len(v.desc), vmdkProbeLen)]
	if !vmdkTextProbe(probe) && !bytes.Contains(bytes.ToLower(v.desc), []byte(`createtype="`)) {
		return outcome{}, false
	}
	d := parseVMDKDescriptor(v.desc)
	o := outcome{format: VMDK, err: d.check(false)}
	if size, err := d.virtualSize(); err == nil {
		o.virtualSize = size
	}
	return o, true
}

// claimedSize is the capacity the header claims, if it is representable.
func (h vmdkHeader) claimedSize() int64 {
	if h.capacity > math.MaxInt64/vmdkSector {
		return 0
	}
	return int64(h.capacity * vmdkSector)
}

// sparseVerdict judges a sparse file; when a footer defers, its header is
// the one qemu uses, so its capacity is the virtual size.
func (v *vmdkParser) sparseVerdict(end streamEnd) (int64, error) {
	h := v.h
	if v.hasEnd {
		footer, err := checkVMDKFooter(end.tail, h)
		if err != nil {
			return footer.claimedSize(), err
		}
		h = footer
	}
	switch {
	case v.desc == nil:
		return h.claimedSize(), errors.New("embedded descriptor missing (truncated?)")
	case h.grainOffset > uint64(end.size)/vmdkSector:
		return h.claimedSize(), fmt.Errorf("truncated: metadata ends at sector %d, past the end of the image", h.grainOffset)
	}
	d := parseVMDKDescriptor(v.desc)
	return h.claimedSize(), d.check(true)
}

// checkVMDKFooter validates the footer of a streamOptimized image whose
// header defers to it, and returns the footer's header, which qemu uses
// (zero if there is no usable footer). tail is the last 1536 bytes: footer
// marker, footer, end-of-stream marker.
func checkVMDKFooter(tail []byte, h vmdkHeader) (vmdkHeader, error) {
	var none vmdkHeader
	if len(tail) < tailSize {
		return none, truncated("footer", len(tail), tailSize)
	}
	marker, footer, eos := tail[:512], tail[512:1024], tail[1024:]
	if binary.LittleEndian.Uint32(marker[8:]) != 0 ||
		binary.LittleEndian.Uint32(marker[12:]) != vmdkMarkerFooter || !isZero(marker[16:]) {
		return none, errors.New("footer marker invalid")
	}
	if !isZero(eos) {
		return none, errors.New("end-of-stream marker invalid")
	}
	if !bytes.HasPrefix(footer, vmdkMagic) {
		return none, errors.New("footer signature missing")
	}
	f, err := parseVMDKHeader(footer)
	if err != nil {
		return f, fmt.Errorf("footer: %w", err)
	}
	return f, footerMatches(h, f)
}

func footerMatches(h, f vmdkHeader) error {
	switch {
	case f.version != h.version:
		return errors.New("header and footer versions differ")
	case f.descSector != h.descSector || f.descSectors != h.descSectors:
		return errors.New("footer names a different descriptor")
	case f.gdOffset == vmdkGDAtEnd:
		return errors.New("footer defers to another footer")
	case f.capacity != h.capacity:
		return errors.New("header and footer disagree on the capacity")
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
