package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// LUKS version 1 (cryptsetup's on-disk format): a big-endian header with 8
// key slots, then the encrypted payload. The virtual size is the payload.
// As in Glance, only version 1 is allowed (qemu cannot open LUKS2); we also
// refuse key slots or a payload offset that do not fit the image.
const (
	luksHeaderLen      = 592 // 208-byte header + 8 key slots of 48 bytes
	luksSlots          = 8
	luksSlotOff        = 208
	luksSlotLen        = 48
	luksSlotActive     = 0x00AC71F3
	luksSlotInactive   = 0x0000DEAD
	luksSector         = 512
	luksVersionOff     = 6
	luksPayloadOff     = 104
	luksKeyBytesOff    = 108
	luksMaxKeyBytes    = 64
	luksSlotKeyOff     = 40 // within a slot: key material offset, sectors
	luksSlotStripesOff = 44
)

var luksMagic = []byte("LUKS\xba\xbe")

type luksParser struct {
	payload uint64 // bytes
	err     error
}

func probeLUKS(_ stream, head []byte) parser {
	if !bytes.HasPrefix(head, luksMagic) {
		return nil
	}
	l := &luksParser{}
	l.payload, l.err = parseLUKS(head)
	return l
}

// parseLUKS returns the payload offset in bytes.
func parseLUKS(b []byte) (uint64, error) {
	if len(b) < luksVersionOff+2 {
		return 0, truncated("header", len(b), luksVersionOff+2)
	}
	if v := binary.BigEndian.Uint16(b[luksVersionOff:]); v != 1 {
		return 0, fmt.Errorf("LUKS version %d is not supported", v)
	}
	if len(b) < luksHeaderLen {
		return 0, truncated("header", len(b), luksHeaderLen)
	}
	payload := uint64(binary.BigEndian.Uint32(b[luksPayloadOff:])) * luksSector
	keyBytes := binary.BigEndian.Uint32(b[luksKeyBytesOff:])
	if keyBytes == 0 || keyBytes > luksMaxKeyBytes {
		return 0, fmt.Errorf("master key of %d bytes invalid", keyBytes)
	}
	for i := range luksSlots {
		if err := checkLUKSSlot(b[luksSlotOff+luksSlotLen*i:], i, payload); err != nil {
			return 0, err
		}
	}
	return payload, nil
}

// checkLUKSSlot refuses a key slot whose state is garbage or whose key
// material would overlap the payload.
func checkLUKSSlot(s []byte, i int, payload uint64) error {
	switch binary.BigEndian.Uint32(s) {
	case luksSlotInactive:
		return nil
	case luksSlotActive:
	default:
		return fmt.Errorf("key slot %d state invalid", i)
	}
	keyOff := uint64(binary.BigEndian.Uint32(s[luksSlotKeyOff:])) * luksSector
	if keyOff < luksHeaderLen || keyOff >= payload || binary.BigEndian.Uint32(s[luksSlotStripesOff:]) == 0 {
		return fmt.Errorf("key slot %d key material invalid", i)
	}
	return nil
}

func (l *luksParser) verdict(end streamEnd) (outcome, bool) {
	o := outcome{format: LUKS, err: l.err}
	if l.err == nil && l.payload > uint64(end.size) {
		o.err = fmt.Errorf("payload offset %d past the end of the image", l.payload)
	}
	if o.err == nil {
		o.virtualSize = end.size - int64(l.payload)
	}
	return o, true
}
