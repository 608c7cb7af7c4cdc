// Package diskformat inspects virtual-machine disk images while their bytes
// stream past: it names the format, reads the virtual size and decides whether
// the image is safe to hand to qemu and friends.
//
// The model is Glance's format inspector (oslo.utils imageutils
// format_inspector), ported format by format and made stricter where Glance
// lets an attack through:
//
//   - An Inspector is an io.Writer. It keeps the first 64 KiB of the stream
//     (every magic number and most headers live there), a few more regions
//     that the headers point at (the VHDX region and metadata tables, a VMDK
//     descriptor, GPT partition entries), and, only for formats with a
//     footer, the last 1536 bytes. Everything else is counted and dropped, so
//     memory stays bounded (see maxHeld) and a Write after the headers costs
//     a few nanoseconds.
//   - Every format's probe runs over the same bytes. A file whose bytes match
//     more than one format is a polyglot and is unsafe, except an ISO with a
//     hybrid MBR/GPT boot record, which Glance also accepts as iso. A stream
//     that matches nothing is raw.
//   - A format whose magic matches but whose header is malformed is reported
//     as that format and unsafe: qemu probes by magic, so such a file must not
//     slip through as raw.
//
// Safety rules (each file names its own): qcow2 with a backing file, an
// external data file, unknown incompatible features or fields qemu would
// refuse; VMDK other than monolithicSparse or streamOptimized, descriptors
// naming extents outside the image or a parent; QED always; differencing
// VHD/VHDX/VDI images; VHDX with a log to replay; LUKS other than version 1;
// malformed MBR or GPT partition tables; polyglots.
//
// Inspect, InspectReaderAt and InspectFile feed a reader through the same
// Writer; Matches checks a declared Glance disk_format against a Report.
package diskformat
