//go:build amd64 && !purego

package sha256twin

// haveSHA: the SHA extensions (CPUID leaf 7, EBX bit 29) and SSSE3 (leaf 1, ECX bit 9,
// for PSHUFB).
var haveSHA = func() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	_, ebx7, _, _ := cpuid(7, 0)
	return ecx1&(1<<9) != 0 && ebx7&(1<<29) != 0
}()

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// blockTwin runs the compression function over every whole 64-byte block of p twice, from
// state a and from state b, with one message schedule.
//
//go:noescape
func blockTwin(a, b *state, p []byte)
