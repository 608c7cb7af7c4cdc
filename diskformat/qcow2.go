package diskformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// qcow2 (qemu docs/interop/qcow2.txt): a big-endian header at offset 0.
// Glance checks the backing file, the external data file and unknown
// incompatible features; we also refuse every header qemu itself would
// refuse to open (block/qcow2.c qcow2_do_open), since a header qemu reads
// differently from us is an image we cannot vouch for.
const (
	qcow2V2HeaderLen       = 72
	qcow2V3HeaderLen       = 104
	qcow2MinClusterBits    = 9
	qcow2MaxClusterBits    = 21
	qcow2MaxL1Bytes        = 32 << 20 // QCOW_MAX_L1_SIZE
	qcow2MaxRefTableBytes  = 8 << 20  // QCOW_MAX_REFTABLE_SIZE
	qcow2MaxSnapshots      = 65536
	qcow2SnapshotHeaderLen = 40
	qcow2MaxRefcountOrder  = 6
)

// Incompatible feature bits.
const (
	qcow2Dirty           = 1 << 0
	qcow2Corrupt         = 1 << 1
	qcow2DataFile        = 1 << 2
	qcow2CompressionType = 1 << 3
	qcow2ExtendedL2      = 1 << 4
	// Glance allows bits 0-3 only: bit 2 is caught by its own check, and
	// extended L2 entries (bit 4) count as unknown.
	qcow2AllowedIncompatible = qcow2Dirty | qcow2Corrupt | qcow2DataFile | qcow2CompressionType
)

// Encryption methods.
const (
	qcow2CryptNone = 0
	qcow2CryptAES  = 1
	qcow2CryptLUKS = 2
)

var qcow2Magic = []byte("QFI\xfb")

type qcow2Header struct {
	version               uint32
	backingOffset         uint64
	clusterBits           uint32
	size                  uint64
	cryptMethod           uint32
	l1Size                uint32
	l1Offset              uint64
	refTableOffset        uint64
	refTableClusters      uint32
	nbSnapshots           uint32
	snapshotsOffset       uint64
	incompatible          uint64
	refcountOrder         uint32
	headerLen             uint32
	compressionType       byte
	hasCompressionTypeFld bool
}

type qcow2Parser struct {
	h   qcow2Header
	err error // the header is malformed
}

func probeQcow2(_ stream, head []byte) parser {
	if !bytes.HasPrefix(head, qcow2Magic) {
		return nil
	}
	h, err := parseQcow2(head)
	return &qcow2Parser{h: h, err: err}
}

func (q *qcow2Parser) verdict(streamEnd) (outcome, bool) {
	o := outcome{format: QCOW2, err: q.err}
	if q.h.size <= math.MaxInt64 {
		o.virtualSize = int64(q.h.size) // what the header claims, even if refused
	}
	if o.err == nil {
		o.err = q.h.safety()
	}
	return o, true
}

// parseQcow2 reads and validates a qcow2 header; b starts at offset 0.
func parseQcow2(b []byte) (qcow2Header, error) {
	var h qcow2Header
	if len(b) < 8 {
		return h, truncated("header", len(b), 8)
	}
	h.version = binary.BigEndian.Uint32(b[4:])
	if len(b) >= 32 {
		h.size = binary.BigEndian.Uint64(b[24:]) // at the same place in version 1
	}
	if h.version != 2 && h.version != 3 {
		return h, fmt.Errorf("unsupported qcow2 version %d", h.version)
	}
	if len(b) < qcow2V2HeaderLen {
		return h, truncated("header", len(b), qcow2V2HeaderLen)
	}
	h.readV2(b)
	if h.version == 3 {
		if err := h.readV3(b); err != nil {
			return h, err
		}
	}
	return h, h.validate()
}

func (h *qcow2Header) readV2(b []byte) {
	be := binary.BigEndian
	h.backingOffset = be.Uint64(b[8:])
	h.clusterBits = be.Uint32(b[20:])
	h.size = be.Uint64(b[24:])
	h.cryptMethod = be.Uint32(b[32:])
	h.l1Size = be.Uint32(b[36:])
	h.l1Offset = be.Uint64(b[40:])
	h.refTableOffset = be.Uint64(b[48:])
	h.refTableClusters = be.Uint32(b[56:])
	h.nbSnapshots = be.Uint32(b[60:])
	h.snapshotsOffset = be.Uint64(b[64:])
	h.refcountOrder = 4
	h.headerLen = qcow2V2HeaderLen
}

// readV3 reads the fields version 3 added; in version 2 the same bytes
// already hold header extensions, so they must not be read there.
func (h *qcow2Header) readV3(b []byte) error {
	if len(b) < qcow2V3HeaderLen {
		return truncated("header", len(b), qcow2V3HeaderLen)
	}
	be := binary.BigEndian
	h.incompatible = be.Uint64(b[72:])
	h.refcountOrder = be.Uint32(b[96:])
	h.headerLen = be.Uint32(b[100:])
	if h.headerLen > qcow2V3HeaderLen {
		if len(b) <= qcow2V3HeaderLen {
			return truncated("header", len(b), qcow2V3HeaderLen+1)
		}
		h.compressionType = b[qcow2V3HeaderLen]
		h.hasCompressionTypeFld = true
	}
	return nil
}

func (h *qcow2Header) clusterSize() uint64 { return 1 << h.clusterBits }

// validate refuses the headers qemu refuses, in qemu's order.
func (h *qcow2Header) validate() error {
	if h.clusterBits < qcow2MinClusterBits || h.clusterBits > qcow2MaxClusterBits {
		return fmt.Errorf("cluster_bits %d out of range [%d, %d]",
			h.clusterBits, qcow2MinClusterBits, qcow2MaxClusterBits)
	}
	if h.version == 3 {
		if err := h.validateV3(); err != nil {
			return err
		}
	}
	if h.size > math.MaxInt64 {
		return fmt.Errorf("virtual size %d overflows", h.size)
	}
	if h.cryptMethod > qcow2CryptLUKS {
		return fmt.Errorf("unknown encryption method %d", h.cryptMethod)
	}
	if err := h.validateTables(); err != nil {
		return err
	}
	return h.validateL1()
}

func (h *qcow2Header) validateV3() error {
	switch {
	case h.headerLen < qcow2V3HeaderLen:
		return fmt.Errorf("header_length %d shorter than %d", h.headerLen, qcow2V3HeaderLen)
	case uint64(h.headerLen) > h.clusterSize():
		return fmt.Errorf("header_length %d exceeds the cluster size", h.headerLen)
	case h.refcountOrder > qcow2MaxRefcountOrder:
		return fmt.Errorf("refcount_order %d out of range", h.refcountOrder)
	}
	return h.validateCompression()
}

func (h *qcow2Header) validateCompression() error {
	bit := h.incompatible&qcow2CompressionType != 0
	switch {
	case h.compressionType > 1:
		return fmt.Errorf("unknown compression type %d", h.compressionType)
	case bit && (!h.hasCompressionTypeFld || h.compressionType == 0):
		return errors.New("compression type bit set without a non-zlib compression type")
	case !bit && h.compressionType != 0:
		return errors.New("non-zlib compression type without its incompatible bit")
	}
	return nil
}

// validateTables checks the offsets and sizes of the L1, refcount and
// snapshot tables as qcow2_validate_table does.
func (h *qcow2Header) validateTables() error {
	if err := h.validateTable("L1 table", h.l1Offset, uint64(h.l1Size), 8, qcow2MaxL1Bytes); err != nil {
		return err
	}
	if err := h.validateTable("refcount table", h.refTableOffset, uint64(h.refTableClusters),
		h.clusterSize(), qcow2MaxRefTableBytes); err != nil {
		return err
	}
	if h.nbSnapshots > qcow2MaxSnapshots {
		return fmt.Errorf("too many snapshots (%d)", h.nbSnapshots)
	}
	return h.validateTable("snapshot table", h.snapshotsOffset, uint64(h.nbSnapshots),
		qcow2SnapshotHeaderLen, qcow2MaxSnapshots*qcow2SnapshotHeaderLen)
}

func (h *qcow2Header) validateTable(name string, offset, entries, entryLen, maxBytes uint64) error {
	if entries > maxBytes/entryLen {
		return fmt.Errorf("%s too large (%d entries)", name, entries)
	}
	if offset > math.MaxInt64-entries*entryLen || offset%h.clusterSize() != 0 {
		return fmt.Errorf("%s offset %#x invalid", name, offset)
	}
	return nil
}

// validateL1 checks that the L1 table can map the whole virtual size, the
// check that stops a huge size from overflowing qemu's arithmetic.
func (h *qcow2Header) validateL1() error {
	l2Bits := h.clusterBits - 3 // 8-byte L2 entries
	if h.incompatible&qcow2ExtendedL2 != 0 {
		l2Bits-- // 16-byte entries
	}
	shift := h.clusterBits + l2Bits
	need := h.size >> shift
	if h.size&(1<<shift-1) != 0 {
		need++
	}
	if need > math.MaxInt32 {
		return fmt.Errorf("virtual size %d too large for %d-byte clusters", h.size, h.clusterSize())
	}
	if uint64(h.l1Size) < need {
		return fmt.Errorf("L1 table of %d entries cannot map %d bytes", h.l1Size, h.size)
	}
	return nil
}

// safety runs Glance's checks plus the legacy-encryption one.
func (h *qcow2Header) safety() error {
	var p problems
	p.add(h.backingOffset != 0, "image has a backing file")
	p.add(h.incompatible&qcow2DataFile != 0, "image has an external data file")
	p.add(h.incompatible&qcow2ExtendedL2 != 0, "extended L2 entries are not allowed (as in Glance)")
	unknown := h.incompatible &^ (qcow2AllowedIncompatible | qcow2ExtendedL2)
	p.add(unknown != 0, "unknown incompatible features %#x", unknown)
	p.add(h.cryptMethod == qcow2CryptAES, "legacy AES encryption, which qemu refuses to boot")
	return p.err()
}
