package diskformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
)

// QED (qemu docs/interop/qed_spec.txt): little-endian header at offset 0.
// No cloud consumer supports it and it can name a backing file, so, as in
// Glance, it is recognised only to be refused.
const qedHeaderLen = 64

var qedMagic = []byte("QED\x00")

var errQEDBanned = errors.New("QED images are not allowed")

type qedParser struct{ size int64 }

func probeQED(_ stream, head []byte) parser {
	if !bytes.HasPrefix(head, qedMagic) {
		return nil
	}
	q := &qedParser{}
	if len(head) >= qedHeaderLen {
		// image_size @48 is what qemu-img reports; keep it for the report.
		if size := binary.LittleEndian.Uint64(head[48:]); size <= math.MaxInt64 {
			q.size = int64(size)
		}
	}
	return q
}

func (q *qedParser) verdict(streamEnd) (outcome, bool) {
	return outcome{format: QED, virtualSize: q.size, err: errQEDBanned}, true
}
