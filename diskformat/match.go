package diskformat

import (
	"errors"
	"fmt"
)

// ErrFormatMismatch is wrapped by Matches when the declared disk_format is
// not what the bytes are.
var ErrFormatMismatch = errors.New("disk_format does not match the image data")

// ErrUnknownDiskFormat is wrapped by Matches for a disk_format Glance does
// not know.
var ErrUnknownDiskFormat = errors.New("unknown disk_format")

// accepts maps each Glance disk_format to the detected formats it accepts.
// Glance (2025.1, require_image_format_match) takes a detected gpt as raw,
// and takes raw for the formats it cannot inspect (aki, ari, ami, ploop);
// kernels and ramdisks may carry a boot sector, hence gpt for those too.
// Unlike Glance, a raw declaration does not accept a detected qcow2, vmdk or
// other container format: an image is what its bytes are. It does accept an
// iso, which every consumer reads as raw. A fixed-size VHD is detected as
// raw, so it does not match vhd, as in Glance.
var accepts = map[string][]string{
	"raw":   {Raw, GPT, ISO},
	"qcow2": {QCOW2},
	"vhd":   {VHD},
	"vhdx":  {VHDX},
	"vmdk":  {VMDK},
	"vdi":   {VDI},
	"iso":   {ISO},
	"luks":  {LUKS},
	"ploop": {Raw},
	"aki":   {Raw, GPT},
	"ari":   {Raw, GPT},
	"ami":   {Raw, GPT},
}

// Matches reports whether an image declared as disk_format declared may be
// what the Report says it is. It does not look at the safety verdict; see
// Verify for both.
func Matches(declared string, r Report) error {
	formats, ok := accepts[declared]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownDiskFormat, declared)
	}
	for _, f := range formats {
		if f == r.Format {
			return nil
		}
	}
	err := fmt.Errorf("%w: disk_format %s, data is %s", ErrFormatMismatch, declared, r.Format)
	if declared == VHD && r.Format == Raw {
		err = fmt.Errorf("%w (a fixed-size VHD reads as raw, as in Glance)", err)
	}
	return err
}

// Verify is the check an upload needs: the image is safe and is what it
// claims to be. Errors wrap ErrUnsafe, ErrFormatMismatch or
// ErrUnknownDiskFormat.
func Verify(declared string, r Report) error {
	if err := r.Err(); err != nil {
		return err
	}
	return Matches(declared, r)
}
