//go:build !amd64 || purego

package sha256twin

var haveSHA = false

func blockTwin(a, b *state, p []byte) { panic("sha256twin: no SHA extensions") }
