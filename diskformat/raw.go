package diskformat

// rawOutcome is the verdict on a stream no other format claims. A raw image
// has no header, so nothing in it can point qemu at another file; its
// virtual size is its length. Fixed-size VHDs (footer only at the end) land
// here too: qemu probes VHD by the copy of the footer at offset 0, so it
// reads them as raw, and Glance does the same.
func rawOutcome(size int64) outcome {
	return outcome{format: Raw, virtualSize: size}
}
