package diskformat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Format names, spelled as Glance's disk_format (and qemu-img, but for vhd,
// which qemu calls vpc). GPT covers MBR too, as in Glance.
const (
	Raw   = "raw"
	QCOW2 = "qcow2"
	VHD   = "vhd"
	VHDX  = "vhdx"
	VMDK  = "vmdk"
	VDI   = "vdi"
	QED   = "qed"
	ISO   = "iso"
	LUKS  = "luks"
	GPT   = "gpt"
)

// Report is the verdict on one image.
type Report struct {
	// Format is the detected format, one of the names above. For a polyglot
	// it is the format qemu would pick.
	Format string `json:"format"`
	// VirtualSize is the size of the disk the guest sees, in bytes; 0 when
	// the header is too broken to tell.
	VirtualSize int64 `json:"virtual_size"`
	// Safe is false when the image must not be accepted; Reason says why.
	Safe   bool   `json:"safe"`
	Reason string `json:"reason"`
}

// ErrUnsafe is wrapped by Report.Err for an unsafe image.
var ErrUnsafe = errors.New("image failed safety checks")

// Err returns nil for a safe image and an error wrapping ErrUnsafe with the
// reason otherwise.
func (r Report) Err() error {
	if r.Safe {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnsafe, r.Reason)
}

// probes lists every format's magic check, in the order qemu's probing would
// prefer them: the formats with a magic at offset 0 first, then those that
// qemu reads as raw.
var probes = []func(s stream, head []byte) parser{
	probeQcow2, probeQED, probeVMDK, probeVHDX, probeVHD, probeVDI, probeLUKS,
	probeISO, probeGPT,
}

// decide turns the verdicts of the formats that matched into a Report.
func (in *Inspector) decide() Report {
	end := streamEnd{size: in.n, tail: in.tailBytes()}
	var hits []outcome
	for _, p := range in.parsers {
		if o, ok := p.verdict(end); ok {
			hits = append(hits, o)
		}
	}
	switch {
	case len(hits) == 0:
		return rawOutcome(in.n).report()
	case len(hits) == 1:
		return hits[0].report()
	case isHybridISO(hits):
		// A bootable ISO carries an MBR or GPT in its system area; Glance
		// accepts the pair as iso, and qemu reads either as raw.
		return hits[slices.IndexFunc(hits, isFormat(ISO))].report()
	}
	return polyglot(hits)
}

func (o outcome) report() Report {
	r := Report{Format: o.format, VirtualSize: max(o.virtualSize, 0), Safe: o.err == nil}
	if o.err != nil {
		r.Reason = o.format + ": " + o.err.Error()
	}
	return r
}

func isFormat(name string) func(outcome) bool {
	return func(o outcome) bool { return o.format == name }
}

func isHybridISO(hits []outcome) bool {
	return len(hits) == 2 && slices.ContainsFunc(hits, isFormat(ISO)) &&
		slices.ContainsFunc(hits, isFormat(GPT))
}

// polyglot rejects bytes that parse as several formats: each consumer may
// read a different disk from them (a qcow2 header hidden in an ISO's system
// area, say).
func polyglot(hits []outcome) Report {
	names := make([]string, len(hits))
	for i, o := range hits {
		names[i] = o.format
	}
	slices.Sort(names)
	r := hits[0].report()
	r.Safe = false
	r.Reason = "multiple formats detected: " + strings.Join(names, ",")
	return r
}

// problems collects the safety checks a format failed, so that a report
// names all of them, as Glance does.
type problems []string

func (p *problems) add(failed bool, format string, args ...any) {
	if failed {
		*p = append(*p, fmt.Sprintf(format, args...))
	}
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}

// truncated reports a structure the stream ended (or was cut) inside.
func truncated(what string, have, need int) error {
	return fmt.Errorf("truncated %s: %d of %d bytes", what, have, need)
}
